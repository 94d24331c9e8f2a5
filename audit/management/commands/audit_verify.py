import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.context import Actor, audit_context
from audit.services import audit_chain_verify
from audit.verification import Verification


class Command(BaseCommand):
    help = (
        "Recompute the audit chain and check its signed checkpoints, the database's and the external ones. "
        "Names the first broken sequence number and exits 1 on any tampering."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
        parser.add_argument(
            "--checkpoints",
            type=Path,
            metavar="PATH",
            help="A file of external checkpoints (JSON Lines, or syslog messages holding them). "
            "Default: the file sink of AUDIT_CHECKPOINT_SINK.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.command_line()
        with audit_context(actor=actor):
            result = audit_chain_verify(actor=actor, checkpoints=options["checkpoints"])
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
        elif result.ok:
            self.stdout.write(
                self.style.SUCCESS(
                    f"OK: {result.events_checked} events, {result.checkpoints_checked} database checkpoints and "
                    f"{result.external_checkpoints_read} external checkpoints verified in {result.seconds:.2f}s; "
                    f"head is event {result.last_sequence}."
                )
            )
            self.write_checks(result, self.stdout)
        else:
            where = result.first_broken_sequence
            self.stderr.write(
                self.style.ERROR(
                    f"TAMPERED: first broken sequence number {where}"
                    if where is not None
                    else "TAMPERED: the external checkpoints file was altered"
                )
            )
            self.write_checks(result, self.stderr)
            for problem in result.problems:
                self.stderr.write(f"  - {problem}")
        if not result.ok:
            raise SystemExit(1)

    def write_checks(self, result: Verification, out: Any) -> None:
        for check in result.check_list():
            verdict = "ok" if check["ok"] else "FAILED"
            out.write(f"  {check['check']}: {verdict} ({check['detail']})")
