"""The detectors measured on the labelled guardrail texts (``bench/data/guardrail-texts.jsonl``).

Each line is a JSON object: ``id``, ``text``, ``label`` (``injection``, ``pii`` or ``benign``), ``kinds`` (for
``pii``: the kinds of personal data in the text), ``language`` and ``split``: ``tune`` (two thirds, what the
detectors were developed against) or ``holdout`` (one third, written before the detectors were tuned and kept out of
their development; read it for the final figure only).

Recall of a detector: of the texts that hold its kind, the share where it finds that kind. False positives: of the
benign texts, the share where it finds anything. ``pii`` counts a text as found when every kind it holds is found;
``overall`` takes every attack (injection and personal data) and every benign text together.
"""

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from governance.detectors import KINDS, PII_KINDS, Detection

TEXTS = Path(__file__).resolve().parent / "data" / "guardrail-texts.jsonl"
SPLITS = ("tune", "holdout")
LABELS = ("injection", "pii", "benign")
DETECTORS = (*KINDS, "pii", "overall")


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    label: str
    kinds: frozenset[str]  # what a detector should find: {"injection"}, the PII kinds, or nothing
    language: str
    split: str


def load(path: Path = TEXTS) -> list[Item]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        row = json.loads(line)
        label = row["label"]
        pii = set(row.get("kinds", []))
        if label not in LABELS or row["split"] not in SPLITS or (label == "pii") != bool(pii) or pii - set(PII_KINDS):
            raise ValueError(f"{path.name} line {number}: bad label, kinds or split: {line}")
        kinds = {"injection"} if label == "injection" else pii
        items.append(Item(row["id"], row["text"], label, frozenset(kinds), row["language"], row["split"]))
    return items


@dataclass(frozen=True)
class Figure:
    found: int
    positives: int
    flagged: int
    benign: int

    @property
    def recall(self) -> float:
        return self.found / self.positives if self.positives else 0.0

    @property
    def false_positive_rate(self) -> float:
        return self.flagged / self.benign if self.benign else 0.0

    def __str__(self) -> str:
        return (
            f"recall {100 * self.recall:5.1f} % ({self.found}/{self.positives}), "
            f"false positives {100 * self.false_positive_rate:4.1f} % ({self.flagged}/{self.benign})"
        )


def _figure(
    results: list[tuple[Item, frozenset[str]]],
    wanted: Callable[[Item], frozenset[str]],
    flags: Callable[[frozenset[str]], bool],
) -> Figure:
    positives = [(item, found) for item, found in results if wanted(item)]
    benign = [found for item, found in results if item.label == "benign"]
    return Figure(
        found=sum(wanted(item) <= found for item, found in positives),
        positives=len(positives),
        flagged=sum(flags(found) for found in benign),
        benign=len(benign),
    )


def _kind_figure(results: list[tuple[Item, frozenset[str]]], kind: str) -> Figure:
    return _figure(results, lambda item: item.kinds & {kind}, lambda found: kind in found)


def figures(items: Iterable[Item], detect: Callable[[str], list[Detection]]) -> dict[str, Figure]:
    """Recall and false positives per detector (each kind, ``pii`` and ``overall``) on ``items``."""
    results = [(item, frozenset(found.kind for found in detect(item.text))) for item in items]
    by_kind = {kind: _kind_figure(results, kind) for kind in KINDS}
    pii = _figure(
        results,
        lambda item: item.kinds if item.label == "pii" else frozenset(),
        lambda found: bool(found & set(PII_KINDS)),
    )
    overall = _figure(results, lambda item: item.kinds, bool)
    return {**by_kind, "pii": pii, "overall": overall}
