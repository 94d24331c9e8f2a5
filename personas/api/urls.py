from rest_framework.routers import SimpleRouter

from personas.api import views

router = SimpleRouter()
router.register("style-guides", views.StyleGuideViewSet, basename="style-guide")
router.register("personas", views.PersonaViewSet, basename="persona")
router.register("conversations", views.ConversationViewSet, basename="conversation")

urlpatterns = router.urls
