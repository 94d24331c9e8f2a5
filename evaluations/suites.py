"""Suites: the scenarios a persona or an agent must pass, as governed configuration (kind ``suite``).

A suite belongs to one persona or one agent (``subject``) and is drafted, reviewed, released and rolled back like
every governed kind, so changing the tests is itself reviewed. Its spec follows ``suite.schema.json``
(docs/evaluations.md); beyond the schema, ``validate_suite`` checks what a schema cannot: the subject exists,
each scenario is of its subject's kind, names are unique, patterns compile, fixtures name tools there are, and
attacks included from the red-team library (``evaluations.redteam``) exist for the subject's kind. Every error
names its scenario.
"""

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.models import Tool
from evaluations import redteam
from governance.models import GovernedObject

SUITE_KIND = "suite"
SCHEMA: dict[str, Any] = json.loads(Path(__file__).with_name("suite.schema.json").read_text())
PERSONA_ONLY = ("turns",)
AGENT_ONLY = ("input", "fixtures", "read_result", "approvals", "expect")
Errors = dict[str, list[str]]


def locate(spec: Any, parts: Sequence[Any]) -> str:
    """A path into a suite as people say it: ``scenario 'refund asked twice'`` ("" outside the scenarios)."""
    if len(parts) < 2 or parts[0] != "scenarios" or not isinstance(parts[1], int) or not isinstance(spec, Mapping):
        return ""
    return _scenario_name(spec.get("scenarios"), parts[1])


def validate_suite(spec: dict[str, Any]) -> Errors:
    """Field errors the schema cannot find (the spec is valid against it)."""
    errors: Errors = {}
    subject = spec["subject"]
    if not GovernedObject.objects.filter(kind=subject["kind"], slug=subject["slug"]).exists():
        errors["subject.slug"] = [f"There is no {subject['kind']} {subject['slug']!r}."]
    seen: set[str] = set()
    for index, scenario in enumerate(spec["scenarios"]):
        where = f"scenarios[{index}]"
        named = _scenario_name(spec["scenarios"], index)
        if scenario["name"] in seen:
            errors.setdefault(f"{where}.name", []).append(f"{named}: another scenario has this name.")
        seen.add(scenario["name"])
        for path, message in _scenario_problems(subject["kind"], scenario):
            errors.setdefault(f"{where}.{path}", []).append(f"{named}: {message}")
    for index, reference in enumerate(spec.get("include", [])):
        if problem := redteam.reference_problem(reference, subject["kind"]):
            errors[f"include[{index}]"] = [problem]
    return errors


def _scenario_problems(kind: str, scenario: dict[str, Any]) -> list[tuple[str, str]]:
    wrong = [key for key in (AGENT_ONLY if kind == "persona" else PERSONA_ONLY) if key in scenario]
    problems = [(key, f"not part of a scenario for a {kind}.") for key in wrong]
    needed = "turns" if kind == "persona" else "input"
    if needed not in scenario:
        problems.append((needed, f"a scenario for a {kind} needs {needed}."))
    if kind == "persona":
        for turn_index, turn in enumerate(scenario.get("turns", [])):
            problems += _pattern_problems(turn.get("expect", {}), f"turns[{turn_index}].expect")
        return problems
    problems += _pattern_problems(scenario.get("expect", {}).get("answer", {}), "expect.answer")
    fixtures = scenario.get("fixtures", {})
    known = set(Tool.objects.filter(name__in=list(fixtures)).values_list("name", flat=True))
    problems += [(f"fixtures.{name}", f"there is no tool {name!r}.") for name in fixtures if name not in known]
    return problems


def _pattern_problems(expectations: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    problems = []
    for index, pattern in enumerate(expectations.get("matches", [])):
        try:
            re.compile(pattern)
        except re.error as error:
            problems.append((f"{where}.matches[{index}]", f"not a regular expression: {error}."))
    return problems


def _scenario_name(scenarios: Any, index: int) -> str:
    scenario = scenarios[index] if isinstance(scenarios, list) and 0 <= index < len(scenarios) else None
    name = scenario.get("name") if isinstance(scenario, Mapping) else None
    return f"scenario {name!r}" if isinstance(name, str) and name else f"scenario {index + 1}"
