from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.db.models.signals import post_migrate


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        from governance import policies, receivers
        from governance.models import Risk
        from governance.registry import GovernedKind, register

        register(
            GovernedKind(
                name="guardrail_policy",
                title="guardrail policy",
                schema=policies.POLICY_SCHEMA,
                validators=(policies.validate_policy_spec,),
                checks=(policies.check_policy_tests,),
                review_risk=Risk.HIGH,
            )
        )
        post_migrate.connect(_after_migrate, dispatch_uid="governance.after_migrate")
        receivers.connect()
        checks.register(_check_two_approver_kinds)


def _check_two_approver_kinds(app_configs: Any, **kwargs: Any) -> list[checks.CheckMessage]:
    from governance.registry import all_kinds

    known = {kind.name for kind in all_kinds()}
    unknown = sorted(set(settings.GOVERNANCE_TWO_APPROVER_KINDS) - known)
    if not unknown:
        return []
    return [
        checks.Error(
            f"GOVERNANCE_TWO_APPROVER_KINDS names kinds that do not exist: {', '.join(unknown)}.",
            hint=f"Known kinds: {', '.join(sorted(known))}.",
            id="governance.E001",
        )
    ]


def _after_migrate(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    # post_migrate is sent once per app with models: act once, on governance's own.
    if sender.label != "governance":
        return
    from governance.services import labels_ensure_defaults, roles_sync

    roles_sync(using=using)
    labels_ensure_defaults(using=using)
