"""Guardrails at run time and as a dry run: facts (with the built-in detectors) in, decision out."""

from collections.abc import Sequence
from typing import Any

from audit.context import Actor
from audit.services import Target, audit_record
from config.errors import DomainError
from governance import detectors, policies, selectors

POLICY_KIND = "guardrail_policy"


def with_detector_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """``facts`` plus what the detectors find in ``facts["text"]``; facts given explicitly win."""
    text = facts.get("text")
    if isinstance(text, str):
        return {**detectors.facts(text), **facts}
    return facts


def released_policies(label: str) -> list[policies.PolicyRef]:
    """The guardrail policies released under ``label``. A run resolves these once and keeps them."""
    return [
        policies.PolicyRef(slug=slug, version=number, spec=spec)
        for slug, number, spec in selectors.released_specs(POLICY_KIND, label)
    ]


def guardrail_check(
    *,
    checkpoint: str,
    facts: dict[str, Any],
    policy_refs: Sequence[policies.PolicyRef],
    actor: Actor,
    target: Any = None,
) -> policies.Decision:
    """Evaluate at a checkpoint and record what matters: a condition that failed (the decision is then
    deny, fail safe) and any decision other than allow. Call it inside the caller's transaction."""
    # The detectors read the text only when a policy is there to see what they found.
    applies = any(ref.spec.get("checkpoint") == checkpoint for ref in policy_refs)
    decision = policies.evaluate(checkpoint, with_detector_facts(facts) if applies else facts, policy_refs)
    if decision.errors:
        audit_record(
            actor=actor,
            action="governance.guardrail.failed",
            target=target or Target(type="governance.checkpoint", label=checkpoint),
            details={"checkpoint": checkpoint, "errors": list(decision.errors), "effect": decision.effect},
        )
    elif decision.effect != "allow":
        audit_record(
            actor=actor,
            action="governance.guardrail.matched",
            target=target or Target(type="governance.checkpoint", label=checkpoint),
            details={"checkpoint": checkpoint, "effect": decision.effect, "reasons": list(decision.reasons)},
        )
    return decision


def guardrail_dry_run(
    *, checkpoint: str, facts: dict[str, Any], spec: dict[str, Any] | None, label: str
) -> dict[str, Any]:
    """What the policies would decide, without recording anything: a draft ``spec`` alone, or every
    policy released under ``label``."""
    if spec is not None:
        errors = policies.validate_policy_spec(spec)
        if errors:
            raise DomainError(
                "The policy is not valid.",
                fields={f"spec.{path}" if path else "spec": messages for path, messages in errors.items()},
            )
        refs = [policies.PolicyRef(slug="draft", version=0, spec=spec)]
    else:
        refs = released_policies(label)
    full_facts = with_detector_facts(facts)
    decision = policies.evaluate(checkpoint, full_facts, refs)
    return {
        **decision.as_dict(),
        "facts": full_facts,
        "policies": [{"slug": ref.slug, "version": ref.version} for ref in refs],
    }
