from rest_framework.routers import SimpleRouter

from governance.api.views import GovernedViewSet


class StyleGuideViewSet(GovernedViewSet):
    kind = "style_guide"


router = SimpleRouter()
router.register("style-guides", StyleGuideViewSet, basename="style-guide")

urlpatterns = router.urls
