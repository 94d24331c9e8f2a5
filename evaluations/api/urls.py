from django.urls import path
from rest_framework.routers import SimpleRouter

from evaluations.api.views import FromProductionView
from evaluations.suites import SUITE_KIND
from governance.api.views import GovernedViewSet


class SuiteViewSet(GovernedViewSet):
    kind = SUITE_KIND


router = SimpleRouter()
router.register("suites", SuiteViewSet, basename="suite")

urlpatterns = [
    path("suites/from-production/", FromProductionView.as_view(), name="suite-from-production"),
    *router.urls,
]
