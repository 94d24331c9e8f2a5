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

from agents.models import Run, RunStatus, Step
from agents.runtime import transitions
from governance.models import GovernedObject

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
AGENT_FIELDS = ("id", "kind", "slug", "name")  # what the runtime reads of a run's agent (the rest is deferred)


def _columns(table: str, fields: Any) -> str:
    return ", ".join(f'{table}."{field.column}"' for field in fields)


# The claim (``lease.claim``), the run and its agent read back, and step ids reserved, in one statement. Only
# table and column names of the models are formatted in; every value is a parameter. The claim's commit does not
# wait for the disk (``synchronous_commit`` off for its transaction alone): a database crash can only forget a
# claim, as if its worker had died before it (the model call made meanwhile is made again), and the first step's
# commit, which waits, makes it durable too. No step is ever committed that way.
CLAIM = f"""
WITH claimed AS (
    UPDATE {Run._meta.db_table}
       SET status = %(running)s, lease_owner = %(owner)s, lease_expires_at = %(expires)s,
           deliveries = deliveries + 1, started_at = COALESCE(started_at, %(now)s), updated_at = %(now)s
     WHERE id = %(id)s AND status = ANY(%(sources)s)
       AND (lease_expires_at IS NULL OR lease_expires_at < %(now)s OR lease_owner = %(owner)s)
 RETURNING *
)
SELECT {_columns("claimed", Run._meta.concrete_fields)},
       {_columns("agent", [GovernedObject._meta.get_field(name) for name in AGENT_FIELDS])},
       ARRAY(SELECT nextval(pg_get_serial_sequence('{STEP_TABLE}', 'id')) FROM generate_series(1, %(ids)s)),
       set_config('synchronous_commit', 'off', true)
  FROM claimed JOIN {GovernedObject._meta.db_table} agent ON agent.id = claimed.agent_id
"""  # noqa: S608


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


def claim(
    run_id: Any, owner: str, now: dt.datetime, expires: dt.datetime, reserve: int
) -> tuple[Run, list[int]] | None:
    """Take the run's lease (see ``lease.claim``) and read it with its agent, reserving ``reserve`` step ids: the
    run, and the ids, or ``None`` when the run was not claimed."""
    arguments = {
        "id": run_id,
        "owner": owner,
        "now": now,
        "expires": expires,
        "running": RunStatus.RUNNING,
        "sources": transitions.sources(RunStatus.RUNNING),
        "ids": reserve,
    }
    with connection.cursor() as cursor:
        cursor.execute(CLAIM, arguments)
        row = cursor.fetchone()
    if row is None:
        return None
    run_fields = Run._meta.concrete_fields
    agent_fields = [GovernedObject._meta.get_field(name) for name in AGENT_FIELDS]
    run = _loaded(Run, run_fields, row[: len(run_fields)])
    run.agent = _loaded(GovernedObject, agent_fields, row[len(run_fields) : -2])
    return run, list(row[-2])


def _loaded(model: type[Model], fields: Any, values: Any) -> Any:
    """An instance of ``model`` from a row of its ``fields``, each value converted as Django's queries do."""
    converted = []
    for field, value in zip(fields, values, strict=True):
        for converter in [*connection.ops.get_db_converters(field.cached_col), *field.get_db_converters(connection)]:
            value = converter(value, field.cached_col, connection)
        converted.append(value)
    return model.from_db(connection.alias, [field.attname for field in fields], converted)


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
