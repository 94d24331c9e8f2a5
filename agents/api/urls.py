from rest_framework.routers import SimpleRouter

from agents.api import views

router = SimpleRouter()
router.register("agents", views.AgentViewSet, basename="agent")
router.register("tools", views.ToolViewSet, basename="tool")
router.register("runs", views.RunViewSet, basename="run")
router.register("approvals", views.ApprovalViewSet, basename="approval")

urlpatterns = router.urls
