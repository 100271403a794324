from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("hit/", views.hit, name="hit"),
    path("slow/", views.slow, name="slow"),
    path("leak/", views.leak, name="leak"),
    path("leak-fixed/", views.leak_fixed, name="leak-fixed"),
    path("whoami/", views.whoami, name="whoami"),
    path("pools/", views.pools, name="pools"),
]
