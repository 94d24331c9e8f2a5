"""Benchmark of guardrail evaluation and style-guide lint: the per-message and per-tool-call costs.

Run as ``python -m bench.policies`` (``make bench-policies``). Pure computation, no database. Figures are
the best of three repeats; the baseline in the same run is a single compiled condition, so the cost of
twenty policies reads against the cost of one.
"""

# ruff: noqa: E402  (Django must be set up before the project's modules are imported)

import os
import timeit
from collections.abc import Callable
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from governance import detectors
from governance.policies import PolicyRef, compile_condition, evaluate
from personas.styleguide import lint

CONDITIONS = [
    "args.amount > 1000 && risk in ['high', 'critical']",
    "'card' in pii_types",
    "injection",
    "has(args.iban) && args.iban.startsWith('GB')",
    "tool.startsWith('admin.')",
    "budget.tokens_used > budget.tokens_limit * 0.9",
    "side_effect == 'write' && autonomy == 'observe'",
    "pii.email > 3",
    "args.exists(k, k == 'password')",
    "size(args.note) > 2000",
]
ACTION: dict[str, Any] = {
    "tool": "payments.refund",
    "risk": "high",
    "side_effect": "write",
    "args": {"amount": 1500.0, "currency": "EUR", "order_id": "A-1", "note": "customer asked twice"},
    "agent": "billing-bot",
    "autonomy": "supervised",
    "budget": {
        "steps_used": 7,
        "steps_limit": 20,
        "tokens_used": 9000,
        "tokens_limit": 10000,
        "cost_used": 0.42,
        "cost_limit": 2.0,
    },
    **detectors.facts(""),
}
TEXT = (
    "Thanks for getting in touch about your order. I have checked the tracking and your parcel left our "
    "warehouse yesterday; it should reach you within two working days. If you would like to change the "
    "delivery address, reply with the new one and we will pass it to the courier. "
) * 4
GUIDE: dict[str, Any] = {
    "banned": [{"phrase": f"banned phrase {n}", "severity": "block"} for n in range(50)],
    "substitutions": [{"phrase": f"old word {n}", "replacement": f"new word {n}"} for n in range(20)],
    "disclaimers": [{"topic": f"t{n}", "triggers": [f"trigger{n}"], "text": f"Disclaimer {n}."} for n in range(5)],
    "max_sentence_words": 30,
    "max_reading_grade": 9.0,
}


def best(call: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=3)) / number


def main() -> None:
    policies = [
        PolicyRef(slug=f"p{n:02}", version=1, spec={"checkpoint": "action", "condition": f"{condition} && false",
                                                    "effect": "escalate", "severity": "high", "order": n})
        for n, condition in enumerate(CONDITIONS * 2)
    ]  # fmt: skip
    assert evaluate("action", ACTION, policies).effect == "allow"  # compiles and caches every condition
    single = compile_condition(CONDITIONS[0])
    one = best(lambda: single.evaluate(ACTION), 200)
    twenty = best(lambda: evaluate("action", ACTION, policies), 200)
    compile_once = best(lambda: compile_condition.__wrapped__(CONDITIONS[0]), 20)  # type: ignore[attr-defined]
    detect = best(lambda: detectors.facts(TEXT), 500)
    lint(TEXT, GUIDE)
    linted = best(lambda: lint(TEXT, GUIDE), 500)
    print(f"Guardrails and lint, {len(TEXT)}-character text\n")
    print(f"{'what':<52}{'per call':>12}")
    print("-" * 64)
    print(f"{'one compiled CEL condition (baseline)':<52}{one * 1e6:>9.0f} µs")
    print(f"{'evaluate() with 20 action policies':<52}{twenty * 1e3:>9.2f} ms  ({twenty / one:.1f}x baseline)")
    print(f"{'compile one condition (uncached)':<52}{compile_once * 1e6:>9.0f} µs")
    print(f"{'detectors.facts() (PII and injection)':<52}{detect * 1e6:>9.0f} µs")
    print(f"{'lint() with 50 banned, 20 substitutions, 5 disclaimers':<52}{linted * 1e6:>9.0f} µs")


if __name__ == "__main__":
    main()
