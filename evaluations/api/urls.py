from rest_framework.routers import SimpleRouter

from evaluations.suites import SUITE_KIND
from governance.api.views import GovernedViewSet


class SuiteViewSet(GovernedViewSet):
    kind = SUITE_KIND


router = SimpleRouter()
router.register("suites", SuiteViewSet, basename="suite")

urlpatterns = router.urls
