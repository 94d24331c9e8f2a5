"""``agents_turn``: a step of a run written in one statement on PostgreSQL (``agents.runtime.postgresql``).

The run's row is updated only while ``p_owner`` holds its lease (else nothing is written and the one row returned
says ``lost``), then the new steps are inserted, the changed ones updated, and the audit events appended
(``audit_append_many``); the rows returned are the audit function's, each with ``ok``, or ``cancel`` when a
cancellation had arrived. Fields absent from the JSON keep their stored values (``jsonb_populate_record`` over the
row itself).
"""

from typing import Any

from django.db import migrations

RUN_COLUMNS = (
    "status, result, error, outcome, outcome_reason, steps_used, tokens_used, cost_used, lease_owner, "
    "lease_expires_at, deliveries, parked_at, finished_at, updated_at"
)
STEP_COLUMNS = "status, tool_id, arguments, result, detail, error, idempotency_key, review_id, started_at, finished_at"


def _prefixed(columns: str, prefix: str) -> str:
    return ", ".join(f"{prefix}.{column.strip()}" for column in columns.split(","))


FORWARD = f"""
CREATE FUNCTION agents_turn(
    p_run uuid, p_owner varchar, p_fields jsonb, p_steps jsonb, p_changed jsonb, p_events jsonb
) RETURNS TABLE (
    state text, out_sequence bigint, out_created_at timestamptz, out_prev_hash varchar, out_hash varchar,
    out_checkpoint_sequence bigint, out_checkpoint_at timestamptz
)
LANGUAGE plpgsql AS $$
DECLARE
    v_cancel boolean;
    v_state text;
BEGIN
    UPDATE agents_run r SET ({RUN_COLUMNS})
        = (SELECT {_prefixed(RUN_COLUMNS, "n")} FROM jsonb_populate_record(r, p_fields) n)
        WHERE r.id = p_run AND r.lease_owner = p_owner AND r.status = 'running'
        RETURNING r.cancel_requested INTO v_cancel;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'lost'::text, NULL::bigint, NULL::timestamptz, NULL::varchar, NULL::varchar,
            NULL::bigint, NULL::timestamptz;
        RETURN;
    END IF;
    v_state := CASE WHEN v_cancel THEN 'cancel' ELSE 'ok' END;
    INSERT INTO agents_step SELECT * FROM jsonb_populate_recordset(NULL::agents_step, p_steps);
    UPDATE agents_step s SET ({STEP_COLUMNS})
        = (SELECT {_prefixed(STEP_COLUMNS, "n")} FROM jsonb_populate_record(s, c.value) n)
        FROM jsonb_array_elements(p_changed) c WHERE s.id = (c.value->>'id')::bigint;
    RETURN QUERY SELECT v_state, a.* FROM audit_append_many(p_events) a;
    IF NOT FOUND THEN
        RETURN QUERY SELECT v_state, NULL::bigint, NULL::timestamptz, NULL::varchar, NULL::varchar,
            NULL::bigint, NULL::timestamptz;
    END IF;
END;
$$;
"""

BACKWARD = "DROP FUNCTION IF EXISTS agents_turn(uuid, varchar, jsonb, jsonb, jsonb, jsonb);"


def forward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("agents", "0009_tool_definitions_governed"), ("audit", "0005_append_many")]

    operations = [migrations.RunPython(forward, backward)]
