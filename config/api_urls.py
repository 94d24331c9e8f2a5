"""URLs under /api/."""

from django.urls import include, path

from governance.api.views import TokenObtainView

urlpatterns = [
    path("auth/token/", TokenObtainView.as_view(), name="api-token"),
    path("audit/", include("audit.api.urls")),
    path("", include("governance.api.urls")),
    path("", include("personas.api.urls")),
    path("", include("agents.api.urls")),
    path("", include("webhooks.api.urls")),
    path("", include("evaluations.api.urls")),
    path("metrics/", include("console.urls")),
]
