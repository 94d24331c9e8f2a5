"""Checks that must pass before a version can be approved (lint results, policy tests, evaluations).

A governed kind lists its checks; each takes the version's spec and returns a ``CheckResult``. Findings
of severity ``error`` refuse the submit (and block approval); ``warning`` and ``info`` findings are shown to the
reviewer.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Finding:
    message: str
    severity: Severity = "error"
    path: str = ""  # where in the spec, like "examples[2].text"; empty for the spec as a whole

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "severity": self.severity, "path": self.path}


@dataclass(frozen=True)
class CheckResult:
    name: str
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return not any(finding.severity == "error" for finding in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "findings": [f.as_dict() for f in self.findings]}


Check = Callable[[dict[str, Any]], CheckResult]
