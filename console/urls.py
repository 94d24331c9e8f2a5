"""URLs under /api/metrics/."""

from django.urls import path

from console.api import MetricsView

urlpatterns = [path("", MetricsView.as_view(), name="metrics")]
