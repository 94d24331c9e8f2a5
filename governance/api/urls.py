from django.urls import path
from rest_framework.routers import SimpleRouter

from governance.api import views


class GuardrailPolicyViewSet(views.GovernedViewSet):
    kind = "guardrail_policy"


router = SimpleRouter()
router.register("policies", GuardrailPolicyViewSet, basename="policy")
router.register("releases", views.ReleaseViewSet, basename="release")
router.register("labels", views.LabelViewSet, basename="label")
router.register("reviews", views.ReviewViewSet, basename="review")

urlpatterns = [
    path("policies/evaluate/", views.PolicyEvaluateView.as_view(), name="policy-evaluate"),
    *router.urls,
]
