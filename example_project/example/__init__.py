"""example_project: a Django site on django_connmon's pooled backends."""
