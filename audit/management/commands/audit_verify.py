import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.context import Actor, audit_context
from audit.services import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Recompute the audit chain and check its signed checkpoints. Names the first broken sequence "
        "number and exits 1 on any tampering."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.command_line()
        with audit_context(actor=actor):
            result = audit_chain_verify(actor=actor)
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
        elif result.ok:
            self.stdout.write(
                self.style.SUCCESS(
                    f"OK: {result.events_checked} events and {result.checkpoints_checked} checkpoints verified "
                    f"in {result.seconds:.2f}s; head is event {result.last_sequence}."
                )
            )
        else:
            self.stderr.write(
                self.style.ERROR(f"TAMPERED: first broken sequence number {result.first_broken_sequence}")
            )
            for problem in result.problems:
                self.stderr.write(f"  - {problem}")
        if not result.ok:
            raise SystemExit(1)
