from django.urls import path

from audit.api import views

urlpatterns = [
    path("events/", views.AuditEventListView.as_view(), name="audit-events"),
    path("events/export/", views.AuditExportView.as_view(), name="audit-events-export"),
    path("verify/", views.AuditVerifyView.as_view(), name="audit-verify"),
]
