"""A step of a run in one statement on PostgreSQL: ``agents_turn`` (migration agents 0010).

``Session.commit`` uses it when a step writes what steps commonly write (the run's own fields, new steps, changed
steps and audit events): one round trip then does what a transaction of five does (BEGIN, the run's UPDATE, the
steps' INSERT, the events' append, COMMIT), with the same guard (the run's row is written only while the lease
holds, or nothing is) and the same atomicity (one statement is one transaction). When more must share the step's
transaction (a review item to open, a run's end to announce), the statement opens that transaction. New steps get
their ids before they are written (``reserve_ids``), so that the audit events can name them; an audit checkpoint
that falls due is signed right after.
"""

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import Field, Model

from agents.models import Step

if TYPE_CHECKING:
    from agents.runtime.session import Session

# What ``agents_turn`` writes (migration agents 0010): of the run, and of a step already saved.
RUN_FIELDS = frozenset(
    [
        "status",
        "result",
        "error",
        "outcome",
        "outcome_reason",
        "steps_used",
        "tokens_used",
        "cost_used",
        "lease_owner",
        "lease_expires_at",
        "deliveries",
        "parked_at",
        "finished_at",
        "updated_at",
    ]
)
STEP_FIELDS = frozenset(
    [
        "status",
        "tool",
        "arguments",
        "result",
        "detail",
        "error",
        "idempotency_key",
        "review",
        "started_at",
        "finished_at",
    ]
)
STEP_TABLE = Step._meta.db_table


def used() -> bool:
    return connection.vendor == "postgresql"


def reserve_ids(count: int) -> list[int]:
    """``count`` ids of the steps' sequence, for steps not written yet (an id left unused is a gap, as after a
    rollback)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [STEP_TABLE, count]
        )
        return [row[0] for row in cursor.fetchall()]


def fits(session: "Session") -> bool:
    """Whether this step's writes are all ``agents_turn`` does."""
    return (
        session.run_fields <= RUN_FIELDS
        and all(fields <= STEP_FIELDS for _, fields in session.changed.values())
        and all(step.pk is not None for step in session.new_steps)
    )


def write(session: "Session", run_fields: set[str]) -> str:
    """Write the step: ``ok``, ``cancel`` (written; a cancellation had arrived) or ``lost`` (nothing written)."""
    steps = [_row(step, [field.name for field in Step._meta.concrete_fields]) for step in session.new_steps]
    changed = [{"id": step.pk, **_row(step, fields)} for step, fields in session.changed.values()]
    arguments = [
        str(session.run.pk),
        session.owner,
        _json(_row(session.run, run_fields)),
        _json(steps),
        _json(changed),
        session.audit.postgresql_arguments(),
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM agents_turn(%s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s::jsonb)", arguments)
        rows = cursor.fetchall()
    state = rows[0][0]
    if state != "lost":
        session.audit.appended([row[1:] for row in rows if row[1] is not None])
    return str(state)


def _row(obj: Model, names: Any) -> dict[str, Any]:
    """The fields ``names`` of ``obj`` by column, as PostgreSQL reads them from JSON."""
    row: dict[str, Any] = {}
    for name in names:
        field = obj._meta.get_field(name)
        assert isinstance(field, Field)
        row[str(field.column)] = _value(getattr(obj, field.attname))
    return row


def _value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()  # to the microsecond (DjangoJSONEncoder keeps milliseconds only)
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return value


def _json(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)
