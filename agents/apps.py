from importlib import import_module
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate, post_save


def _sync_tools(sender: Any, using: str = "default", **kwargs: Any) -> None:
    from agents.services import tools_sync
    from audit.context import Actor

    if using == "default":
        tools_sync(actor=Actor.system("tools_sync"))


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from agents import services, spec, tool_versions
        from governance.models import Risk, Version

        for module in settings.AGENTS_TOOL_MODULES:
            import_module(module)  # registers the module's @tool functions
        from governance.registry import GovernedKind, register

        register(
            GovernedKind(
                name=services.AGENT_KIND,
                title="agent",
                schema=spec.AGENT_SCHEMA,
                validators=(spec.validate_agent,),
                checks=(spec.model_check,),
                review_risk=Risk.HIGH,
                pins=tool_versions.agent_pins,
            )
        )
        register(
            GovernedKind(
                name=tool_versions.TOOL_KIND,
                title="tool",
                schema=tool_versions.TOOL_SCHEMA,
                validators=(tool_versions.validate_tool,),
                review_risk=Risk.HIGH,
            )
        )
        post_migrate.connect(_sync_tools, sender=self, dispatch_uid="agents.sync_tools")
        post_save.connect(tool_versions.forget_pinned, sender=Version, dispatch_uid="agents.forget_pinned_tools")
