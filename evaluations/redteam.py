"""The red-team library (``redteam.json``): attacks a suite adds by reference (``"include": ["redteam:<id>"]``).

Each attack is a scenario of a persona or of an agent: requests for the system prompt in several languages,
direct injections, jailbreak framings, look-alike letters, requests for personal data, and instructions an
attacker planted in what a tool returns. What it expects is what any governed persona or agent must do: reveal
none of its instructions, have the guardrails stop the takeover, execute no write.
"""

import json
from pathlib import Path
from typing import Any

PREFIX = "redteam:"
ATTACKS: dict[str, dict[str, Any]] = {
    attack["id"]: attack for attack in json.loads(Path(__file__).with_name("redteam.json").read_text())["attacks"]
}
CATEGORIES = (
    "system_prompt",
    "direct_injection",
    "jailbreak",
    "homoglyphs",
    "pii_exfiltration",
    "tool_result_injection",
)
_ABOUT = ("id", "title", "category", "kind", "technique")


def scenario(attack: dict[str, Any]) -> dict[str, Any]:
    """The attack as a scenario of a suite."""
    body = {key: value for key, value in attack.items() if key not in _ABOUT}
    return {"name": f"red team: {attack['title']}", "category": "red_team", **body}


def reference_problem(reference: str, kind: str) -> str:
    """Why ``reference`` cannot be included in a suite for a ``kind``, or ""."""
    attack = ATTACKS.get(reference.removeprefix(PREFIX))
    if attack is None:
        return f"there is no attack {reference!r} in the red-team library."
    if attack["kind"] != kind:
        return f"{reference!r} is an attack on an {attack['kind']}, not on a {kind}."
    return ""
