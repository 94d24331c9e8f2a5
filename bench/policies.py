"""Benchmark of guardrail evaluation and style-guide lint: the per-message and per-tool-call costs; and the
detectors' recall and false positives on the labelled guardrail texts (``bench.labelled``).

Run as ``python -m bench.policies`` (``make bench-policies``). Pure computation, no database. Timings are
the best of three repeats; the baseline in the same run is a single compiled condition, so the cost of
twenty policies reads against the cost of one. The machine's load average is printed with them: timings taken
on a busy machine read high.
"""

# ruff: noqa: E402  (Django must be set up before the project's modules are imported)

import os
import timeit
from collections.abc import Callable
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from bench import labelled
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
        PolicyRef(
            slug=f"p{n:02}",
            version=1,
            spec={
                "checkpoint": "action",
                "condition": f"{condition} && false",
                "effect": "escalate",
                "severity": "high",
                "order": n,
            },
        )
        for n, condition in enumerate(CONDITIONS * 2)
    ]
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
    detection_figures()


def detection_figures() -> None:
    items = labelled.load()
    texts = [item.text for item in items]
    per_text = best(lambda: [detectors.detect(text) for text in texts], 3) / len(texts)
    print(f"{'detectors.detect(), labelled texts (average)':<52}{per_text * 1e6:>9.0f} µs")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\nLoad average (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")

    counts = {split: sum(item.split == split for item in items) for split in labelled.SPLITS}
    languages = len({item.language for item in items})
    splits = ", ".join(f"{split} {count}" for split, count in counts.items())
    print(f"\nDetectors on {labelled.TEXTS.name}: {len(items)} texts in {languages} languages ({splits})")
    for split in labelled.SPLITS:
        figures = labelled.figures([item for item in items if item.split == split], detectors.detect)
        print(f"\n{split}")
        for name, figure in figures.items():
            print(f"  {name:<10} {split}: {figure}")


if __name__ == "__main__":
    main()
