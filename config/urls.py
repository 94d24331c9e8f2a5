"""Top-level URLs: the console (admin), the API, its schema and docs, and health probes."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import api, health

admin.site.site_header = "Steward governance console"
admin.site.site_title = "Steward"
admin.site.index_title = "Governance console"

# Under /api/ even Django's own error pages answer the API's one error shape (config.api).
handler400 = api.bad_request
handler404 = api.not_found
handler500 = api.server_error

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("config.api_urls")),
]
