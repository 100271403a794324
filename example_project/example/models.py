from django.db import models


class Hit(models.Model):
    """One row per visit of the ``hit`` view."""

    path = models.CharField(max_length=200)
    at = models.DateTimeField(auto_now_add=True)
