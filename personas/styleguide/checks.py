"""The style guide's approval check: ``check_examples`` lints the guide's own examples and substitutions, so a
version that blocks its compliant examples or misses its counter-examples cannot be approved.
"""

from collections.abc import Sequence
from typing import Any

from governance.checks import CheckResult, Finding
from personas.styleguide.compiling import _entries
from personas.styleguide.linting import Violation, lint

# --- the approval check -------------------------------------------------------------------------------------------


def _describe(violations: Sequence[Violation]) -> str:
    return "; ".join(f"{v.rule}: {v.message}" for v in violations)


def check_examples(spec: dict[str, Any]) -> CheckResult:
    """Lint the guide's own examples: compliant ones must not be blocked (anything milder is a warning), and
    counter-examples must be flagged by at least one rule."""
    findings: list[Finding] = []
    if not _entries(spec, "examples"):
        findings.append(
            Finding(
                message="no examples: add texts the guide should accept and counter-examples it should flag",
                severity="warning",
                path="examples",
            )
        )
    for i, substitution in enumerate(_entries(spec, "substitutions")):
        replacement = substitution.get("replacement")
        blocked = [v for v in lint(replacement, spec) if v.severity == "block"] if isinstance(replacement, str) else []
        if blocked:
            message = f"The replacement would itself be blocked: {_describe(blocked)}"
            findings.append(Finding(message=message, severity="error", path=f"substitutions[{i}].replacement"))
    for i, example in enumerate(_entries(spec, "examples")):
        text = example.get("text")
        if not isinstance(text, str):
            continue
        path = f"examples[{i}].text"
        violations = lint(text, spec)
        if example.get("compliant", True):
            blocking = [v for v in violations if v.severity == "block"]
            if blocking:
                message = f"Example marked compliant is blocked by the guide: {_describe(blocking)}"
                findings.append(Finding(message=message, severity="error", path=path))
            elif violations:
                message = f"Example marked compliant is flagged by the guide: {_describe(violations)}"
                findings.append(Finding(message=message, severity="warning", path=path))
        elif not violations:
            message = "The guide does not catch this counter-example: no rule flags it"
            findings.append(Finding(message=message, severity="error", path=path))
    return CheckResult(name="style_guide.examples", findings=tuple(findings))
