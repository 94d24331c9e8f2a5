"""``audit_append_many``: several events appended in one statement, in order, each as ``audit_append`` appends it.

The runtime records a step's events together (``audit.services.AuditBatch``): one round trip for all of them
instead of one each. The events are a JSON array of arrays, each the fifteen arguments of ``audit_append`` in
its order; the rows returned are ``audit_append``'s, one an event, in the same order.
"""

from typing import Any

from django.db import migrations

FORWARD = """
CREATE FUNCTION audit_append_many(p_events jsonb) RETURNS TABLE (
    out_sequence bigint, out_created_at timestamptz, out_prev_hash varchar, out_hash varchar,
    out_checkpoint_sequence bigint, out_checkpoint_at timestamptz
)
LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
BEGIN
    FOR e IN SELECT value FROM jsonb_array_elements(p_events) LOOP
        RETURN QUERY SELECT * FROM audit_append(
            e->>0, e->>1, e->>2, e->>3,
            (e->>4)::varchar, (e->>5)::varchar, (e->>6)::varchar, (e->>7)::varchar,
            (e->>8)::varchar, (e->>9)::varchar, (e->>10)::varchar,
            e->>11, (e->>12)::varchar, (e->>13)::uuid, (e->>14)::varchar
        );
    END LOOP;
END;
$$;
"""

BACKWARD = "DROP FUNCTION IF EXISTS audit_append_many(jsonb);"


def forward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_seals_and_checkpoint_index")]

    operations = [migrations.RunPython(forward, backward)]
