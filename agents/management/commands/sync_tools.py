"""``manage.py sync_tools``: write the tools registered in code (AGENTS_TOOL_MODULES) to the database."""

from typing import Any

from django.core.management.base import BaseCommand

from agents.services import tools_sync
from audit.context import Actor, audit_context


class Command(BaseCommand):
    help = "Sync the tools registered in code to the database (also done after every migrate)."

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.command_line()
        with audit_context(actor=actor):
            changes = tools_sync(actor=actor)
        for change, names in changes.items():
            for name in names:
                self.stdout.write(f"{change}: {name}")
        if not any(changes.values()):
            self.stdout.write("The tools are in sync.")
