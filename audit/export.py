"""The audit trail as a file: CSV or JSON Lines, streamed in sequence order, a chunk of rows at a time.

Values are written exactly as stored, so the file can be checked against the chain: ``created_at`` and
``redacted_at`` as the canonical UTC text the hashes cover, ``details`` as canonical JSON (an object in JSON
Lines, its text in CSV). Nothing is escaped for spreadsheets: a label beginning with ``=`` stays as it was
recorded, so open CSV exports in a spreadsheet with formulas disabled.
"""

import csv
import io
import json
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from django.db.models import QuerySet

from audit import integrity
from audit.models import AuditEvent

COLUMNS = (
    "sequence",
    "created_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "details",
    "details_digest",
    "redacted_at",
    "correlation_id",
    "prev_hash",
    "hash",
)
CHUNK_ROWS = 2_000  # rows fetched from the database and sent to the client at a time


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


CONTENT_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.JSONL: "application/jsonl; charset=utf-8",
}


def _records(events: QuerySet[AuditEvent]) -> Iterator[dict[str, Any]]:
    """Each event as a dict of ``COLUMNS``, in sequence order, read in chunks (a server-side cursor on PostgreSQL)."""
    for row in events.order_by("sequence").values_list(*COLUMNS).iterator(chunk_size=CHUNK_ROWS):
        record = dict(zip(COLUMNS, row, strict=True))
        record["created_at"] = integrity.timestamp(record["created_at"])
        if record["redacted_at"] is not None:
            record["redacted_at"] = integrity.timestamp(record["redacted_at"])
        record["correlation_id"] = str(record["correlation_id"])
        yield record


def _csv(events: QuerySet[AuditEvent]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for count, record in enumerate(_records(events), start=1):
        record["details"] = integrity.canonical_json(record["details"])
        if record["redacted_at"] is None:
            record["redacted_at"] = ""
        writer.writerow(record.values())
        if count % CHUNK_ROWS == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _jsonl(events: QuerySet[AuditEvent]) -> Iterator[bytes]:
    lines: list[str] = []
    for record in _records(events):
        lines.append(_LINE.encode(record))
        if len(lines) == CHUNK_ROWS:
            yield ("\n".join(lines) + "\n").encode()
            lines.clear()
    if lines:
        yield ("\n".join(lines) + "\n").encode()


def stream(events: QuerySet[AuditEvent], fmt: ExportFormat) -> Iterator[bytes]:
    """The file's bytes, chunk by chunk; the database is read as the chunks are consumed."""
    return _csv(events) if fmt == ExportFormat.CSV else _jsonl(events)
