"""The persona's approval check: the style guide version a persona spec pins, the validator that it exists, and
``check_persona_style``, which lints every text the persona can send against that guide before the persona
version can be approved. Also the governed kinds' names (``PERSONA_KIND``, ``STYLE_GUIDE_KIND``).
"""

from collections.abc import Mapping
from typing import Any

from governance.checks import CheckResult, Finding, Severity
from governance.models import Version, VersionStatus
from personas import flows, styleguide

PERSONA_KIND = "persona"
STYLE_GUIDE_KIND = "style_guide"


def style_guide_version(reference: Mapping[str, Any] | None) -> Version | None:
    """The style guide version a persona spec pins, or None when it names none (or one that does not exist)."""
    if not reference:
        return None
    return (
        Version.objects.select_related("object")
        .filter(object__kind=STYLE_GUIDE_KIND, object__slug=reference["slug"], number=reference["version"])
        .first()
    )


def validate_style_guide_reference(spec: dict[str, Any]) -> dict[str, list[str]]:
    reference = spec.get("style_guide")
    if reference and style_guide_version(reference) is None:
        return {"style_guide": [f"There is no style guide {reference['slug']!r} v{reference['version']}."]}
    return {}


def check_persona_style(spec: dict[str, Any]) -> CheckResult:
    """Lint every text the persona can send against its pinned style guide: anything ``block`` stops approval;
    rewrites and warnings are shown to the reviewer. The guide version itself must be approved."""
    name = "persona.style"
    guide = style_guide_version(spec.get("style_guide"))
    if guide is None:
        return CheckResult(name, (Finding("no style guide: the persona's words are not checked", "warning"),))
    findings: list[Finding] = []
    if guide.status != VersionStatus.APPROVED:
        findings.append(
            Finding(
                f"{guide} is {guide.get_status_display()}: a persona may only follow an approved version",
                path="style_guide.version",
            )
        )
    for path, where, template in flows.templates(spec):
        for violation in styleguide.lint(template, guide.spec):
            severity: Severity = "error" if violation.severity == "block" else "warning"
            action = {"block": "blocked", "rewrite": "will be rewritten", "warn": "flagged"}[violation.severity]
            findings.append(Finding(f"{where}: {action} by {guide}: {violation.message}", severity, path))
    return CheckResult(name, tuple(findings))
