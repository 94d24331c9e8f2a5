"""Verifying the trail: the chain, the seals, the redactions and every checkpoint, in one pass over the events.

Each check names the first sequence number it finds wrong:

- chain links: no gaps, each event links to the one before (a deletion, an insertion, a reordering);
- digests: each event matches its hash, and its details their digest (an edit);
- seals: each event carries the seal only a holder of the key can compute (a forged event, or an edited one
  whose hash and every later hash were recomputed);
- redactions matched: a redacted event holds no details and a later ``audit.event.redacted`` event names it;
- database and external checkpoints: each is signed, and the chain passes through it (a rewrite), and none
  lies beyond the chain's head (a truncation);
- the newest checkpoint covers the head: fewer than ``AUDIT_CHECKPOINT_EVERY_EVENTS`` events after it, and it
  is at most the window old (twice ``AUDIT_CHECKPOINT_INTERVAL``), else events after it are not covered.
"""

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from hashlib import sha256
from typing import Any

from audit.integrity import GENESIS_HASH, CheckpointRecord, Sealer, hash_and_seal_texts, seal_key, timestamp

REDACTED_DETAILS = "{}"
REDACTION_ACTION = "audit.event.redacted"
REDACTION_TARGET = "audit.auditevent"


class Check(StrEnum):
    LINKS = "chain links"
    DIGESTS = "digests"
    SEALS = "seals"
    REDACTIONS = "redactions matched"
    DATABASE_CHECKPOINTS = "database checkpoints"
    EXTERNAL_CHECKPOINTS = "external checkpoints"
    COVERAGE = "newest checkpoint covers head"
    WINDOW = "window"


@dataclass(frozen=True)
class Window:
    """How far the newest checkpoint may trail the head: fewer than ``events`` events, at most ``seconds`` old."""

    events: int
    seconds: float


@dataclass
class Verification:
    """The outcome of checking the chain and its checkpoints."""

    events_checked: int = 0
    checkpoints_checked: int = 0
    external_checkpoints_read: int = 0
    external_path: str | None = None
    last_sequence: int = 0
    last_hash: str = GENESIS_HASH
    first_broken_sequence: int | None = None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    checks: dict[str, str] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, sequence: int | None, problem: str, check: Check) -> None:
        if sequence is not None and (self.first_broken_sequence is None or sequence < self.first_broken_sequence):
            self.first_broken_sequence = sequence
        self.problems.append(problem)
        self.failed.add(check)

    def check_list(self) -> list[dict[str, Any]]:
        return [
            {"check": name, "ok": name not in self.failed, "detail": detail} for name, detail in self.checks.items()
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events_checked": self.events_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "external_checkpoints_read": self.external_checkpoints_read,
            "external_checkpoints": self.external_path,
            "last_sequence": self.last_sequence,
            "last_hash": self.last_hash,
            "first_broken_sequence": self.first_broken_sequence,
            "problems": self.problems,
            "checks": self.check_list(),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class External:
    """Checkpoints read from outside the database, with what was wrong with the file itself."""

    path: str
    records: Sequence[CheckpointRecord]
    problems: Sequence[str] = ()
    missing: bool = False  # no such file: nothing was ever written there, or it was taken away


class _Verifier:
    """One pass over the events in sequence order; state that spans events lives here."""

    def __init__(self, *, key: str, window: Window, result: Verification) -> None:
        self.key = key
        self.seal = Sealer(seal_key(key))
        self.window = window
        self.result = result
        self.expected: dict[int, list[tuple[CheckpointRecord, Check]]] = {}
        self.expected_sequence = 1
        self.prev_hash = GENESIS_HASH
        self.broken = False
        self.sealed_seen = False
        self.unsealed = 0
        self.count = 0
        self.pending_redactions: dict[str, int] = {}
        self.redacted = 0
        self.vouched: CheckpointRecord | None = None  # the newest checkpoint the chain passed through
        self.first_created_at: str | None = None

    # --- checkpoints --------------------------------------------------------------------------------

    def add_checkpoints(self, records: Iterable[CheckpointRecord], check: Check) -> int:
        count = 0
        for record in records:
            count += 1
            if not record.signature_is_valid(self.key):
                self.result.fail(
                    record.sequence,
                    f"{record.label} (event {record.sequence}) has an invalid signature: "
                    "forged, altered, or signed with another key",
                    check,
                )
                continue
            self.expected.setdefault(record.sequence, []).append((record, check))
        return count

    def compare_checkpoints(self, sequence: int, stored_hash: str) -> None:
        for record, check in self.expected.pop(sequence):
            if record.hash == stored_hash:
                if self.vouched is None or record.sequence >= self.vouched.sequence:
                    self.vouched = record
                continue
            self.rewritten(sequence, record, check)

    def rewritten(self, sequence: int, record: CheckpointRecord, check: Check) -> None:
        located = self.result.first_broken_sequence
        if located is not None and located <= sequence:
            # An earlier check already named the first changed event: this disagreement follows from it.
            self.result.fail(sequence, f"event {sequence} differs from signed {record.label}", check)
            return
        last_good = min(self.vouched.sequence if self.vouched else 0, sequence - 1)
        where = (
            f"from event {sequence}"
            if last_good == sequence - 1
            else f"at an event from {last_good + 1} to {sequence} (the last checkpoint it agrees with is at event "
            f"{last_good})"
        )
        self.result.fail(
            last_good + 1,
            f"event {sequence} differs from signed {record.label}: the chain was rewritten {where}",
            check,
        )

    # --- events -------------------------------------------------------------------------------------

    def event(self, row: Sequence[Any]) -> None:
        sequence, stored_hash = row[8], row[14]
        if not self.broken:
            self.check_event(row)
            self.broken = self.result.first_broken_sequence is not None
        if row[13] or row[0] == REDACTION_ACTION:
            self.track_redaction(row)
        if sequence in self.expected:
            self.compare_checkpoints(sequence, stored_hash)
        self.count += 1
        self.prev_hash = stored_hash
        self.expected_sequence = sequence + 1

    def check_event(self, row: Sequence[Any]) -> None:
        sequence, seal = row[8], row[15]
        fail = self.result.fail
        if sequence != self.expected_sequence or row[7] != self.prev_hash:
            self.check_link(row)
            return
        hashed, sealed = hash_and_seal_texts(*row[:12])
        if sha256(hashed.encode()).hexdigest() != row[14]:
            fail(sequence, f"event {sequence} does not match its hash: edited", Check.DIGESTS)
        elif (self.seal(sealed) != seal) if seal else not self.unsealed_allowed():
            fail(sequence, self.seal_problem(row), Check.SEALS)
        elif row[13]:
            if row[12] != REDACTED_DETAILS:
                fail(sequence, f"event {sequence} is marked redacted but still holds details: edited", Check.REDACTIONS)
        elif sha256(row[12].encode()).hexdigest() != row[6]:
            fail(sequence, f"event {sequence} details do not match their digest: edited", Check.DIGESTS)
        self.sealed_seen = self.sealed_seen or bool(seal)

    def check_link(self, row: Sequence[Any]) -> None:
        sequence, first = row[8], self.expected_sequence
        if sequence != first:
            missing = f"event {first}" if sequence == first + 1 else f"events {first}-{sequence - 1}"
            self.result.fail(first, f"{missing} missing: deleted from the trail", Check.LINKS)
        else:
            self.result.fail(
                sequence, f"event {sequence} does not link to event {sequence - 1}: inserted or reordered", Check.LINKS
            )

    def unsealed_allowed(self) -> bool:
        """Events appended before seals began carry none; once one is sealed, every later one must be."""
        self.unsealed += 1
        return not self.sealed_seen

    def seal_problem(self, row: Sequence[Any]) -> str:
        sequence = row[8]
        if not row[15]:
            return f"event {sequence} carries no seal though earlier events do: forged, written past Steward"
        return f"event {sequence} does not match its seal: forged or edited, with its hash recomputed"

    def track_redaction(self, row: Sequence[Any]) -> None:
        """A redacted event waits for the ``audit.event.redacted`` event that names it, later in the trail."""
        if row[13]:
            self.redacted += 1
            self.pending_redactions[str(row[8])] = row[8]
        if row[0] == REDACTION_ACTION and row[11] == REDACTION_TARGET:
            self.pending_redactions.pop(row[9], None)

    # --- after the last event -----------------------------------------------------------------------

    def finish(self, *, now: dt.datetime) -> None:
        result = self.result
        result.events_checked = self.count
        if result.events_checked:
            result.last_sequence, result.last_hash = self.expected_sequence - 1, self.prev_hash
        for sequence in sorted(self.pending_redactions.values()):
            result.fail(
                sequence,
                f"event {sequence} is marked redacted but no {REDACTION_ACTION} event names it: redacted past Steward",
                Check.REDACTIONS,
            )
        self.beyond_head()
        self.coverage(now)

    def beyond_head(self) -> None:
        head = self.result.last_sequence
        newest: dict[Check, CheckpointRecord] = {}
        for entries in self.expected.values():  # what is left lies beyond the head
            for record, check in entries:
                if check not in newest or record.sequence > newest[check].sequence:
                    newest[check] = record
        for check, record in newest.items():
            self.result.fail(
                head + 1,
                f"the trail ends at event {head} but signed {record.label} covers event {record.sequence}: "
                f"events {head + 1}-{record.sequence} were truncated",
                check,
            )

    def coverage(self, now: dt.datetime) -> None:
        head = self.result.last_sequence
        if not head:
            return
        if self.vouched is not None:
            covered, since, what = self.vouched.sequence, self.vouched.created_at, f"event {self.vouched.sequence}"
        else:
            covered, what = 0, "none"
            since = dt.datetime.fromisoformat(self.first_created_at or timestamp(now))
        after = head - covered
        if after >= self.window.events:
            self.result.fail(
                covered + 1,
                f"events after the newest checkpoint are not covered: {after} events after it ({what}), at most "
                f"{self.window.events - 1} may be",
                Check.COVERAGE,
            )
        age = (now - since).total_seconds()
        if age > self.window.seconds:
            self.result.fail(
                covered + 1,
                f"events after the newest checkpoint are not covered: the newest checkpoint ({what}) dates from "
                f"{age:.0f} s ago, beyond the window of {self.window.seconds:.0f} s; events after it may have been "
                "truncated or forged",
                Check.WINDOW,
            )
        self.describe(covered=covered, after=after, age=age)

    def describe(self, *, covered: int, after: int, age: float) -> None:
        checks = self.result.checks
        checks[Check.COVERAGE] = (
            f"newest checkpoint at event {covered}, {after} events after it (fewer than {self.window.events})"
        )
        checks[Check.WINDOW] = f"newest checkpoint {age:.0f} s old (at most {self.window.seconds:.0f} s)"


def _describe(verifier: _Verifier, external: External | None) -> None:
    result = verifier.result
    checks: dict[str, str] = {
        Check.LINKS: f"events 1-{result.last_sequence}" if result.last_sequence else "no events",
        Check.DIGESTS: f"{result.events_checked} hashes and details digests recomputed",
        Check.SEALS: f"{result.events_checked - verifier.unsealed} events sealed"
        + (f", {verifier.unsealed} from before sealing began" if verifier.unsealed else ""),
        Check.REDACTIONS: f"{verifier.redacted} redacted events, each blank and named by its {REDACTION_ACTION} event",
        Check.DATABASE_CHECKPOINTS: f"{result.checkpoints_checked} signed checkpoints",
        Check.EXTERNAL_CHECKPOINTS: (
            f"from {external.path}: {result.external_checkpoints_read} read"
            + (" (no such file)" if external.missing else "")
            if external
            else "no file sink configured: not compared"
        ),
    }
    if not result.last_sequence:
        checks[Check.COVERAGE] = checks[Check.WINDOW] = "no events to cover"
    result.checks = {**checks, **result.checks}


def verify(
    rows: Iterable[Sequence[Any]],
    checkpoints: Iterable[CheckpointRecord],
    *,
    key: str,
    window: Window,
    external: External | None = None,
    now: dt.datetime | None = None,
) -> Verification:
    """Check ``rows`` (laid out as ``integrity.ROW_FIELDS``, ordered by sequence), the database's
    ``checkpoints`` and the ``external`` ones; name the first broken sequence number."""
    started = time.perf_counter()
    result = Verification(external_path=external.path if external else None)
    verifier = _Verifier(key=key, window=window, result=result)
    result.checkpoints_checked = verifier.add_checkpoints(checkpoints, Check.DATABASE_CHECKPOINTS)
    if external is not None:
        result.external_checkpoints_read = verifier.add_checkpoints(external.records, Check.EXTERNAL_CHECKPOINTS)
        for problem in external.problems:
            result.fail(None, problem, Check.EXTERNAL_CHECKPOINTS)
    events = iter(rows)
    first = next(events, None)
    if first is not None:
        verifier.first_created_at = first[5]
        verifier.event(first)
    for row in events:
        verifier.event(row)
    verifier.finish(now=now or dt.datetime.now(dt.UTC))
    _describe(verifier, external)
    result.seconds = time.perf_counter() - started
    return result
