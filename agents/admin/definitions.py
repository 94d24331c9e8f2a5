"""Agent definitions in the console: the shared governed pages."""

from django.contrib import admin

from agents import services
from agents.models import AgentDefinition
from governance.admin import GovernedObjectAdmin


@admin.register(AgentDefinition)
class AgentDefinitionAdmin(GovernedObjectAdmin):
    kind = services.AGENT_KIND
