"""Events carry a seal, and an append learns the newest checkpoint, to write one every N events or T seconds.

The seal is an HMAC computed in Python under a key the database never sees (``audit.integrity.event_seal``);
``audit_append`` stores it with the event. Under the chain's lock the function also reads the newest
checkpoint (through the new index on its sequence), or when there is none the first event's time, and returns
them: Python decides from them whether this append signs a checkpoint, in the same round trip as before.
"""

import importlib
from typing import Any

from django.db import migrations, models

FORWARD = """
DROP FUNCTION IF EXISTS audit_append(
    text, text, text, text, varchar, varchar, varchar, varchar, varchar, varchar, varchar, text, varchar, uuid
);
CREATE FUNCTION audit_append(
    p_head text, p_middle text, p_between text, p_tail text,
    p_actor_type varchar, p_actor_id varchar, p_actor_label varchar, p_action varchar,
    p_target_type varchar, p_target_id varchar, p_target_label varchar,
    p_details text, p_details_digest varchar, p_correlation_id uuid, p_seal varchar
) RETURNS TABLE (
    out_sequence bigint, out_created_at timestamptz, out_prev_hash varchar, out_hash varchar,
    out_checkpoint_sequence bigint, out_checkpoint_at timestamptz
)
LANGUAGE plpgsql AS $$
DECLARE
    v_sequence bigint;
    v_prev varchar;
    v_now timestamptz;
    v_hash varchar;
    v_checkpoint_sequence bigint;
    v_checkpoint_at timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(7312050);
    SELECT e.sequence, e.hash INTO v_sequence, v_prev FROM audit_auditevent e ORDER BY e.sequence DESC LIMIT 1;
    IF NOT FOUND THEN
        v_sequence := 0;
        v_prev := repeat('0', 64);
    END IF;
    v_sequence := v_sequence + 1;
    v_now := clock_timestamp();
    SELECT c.sequence, c.created_at INTO v_checkpoint_sequence, v_checkpoint_at
        FROM audit_auditcheckpoint c ORDER BY c.sequence DESC LIMIT 1;
    IF NOT FOUND THEN
        v_checkpoint_sequence := 0;
        SELECT e.created_at INTO v_checkpoint_at FROM audit_auditevent e ORDER BY e.sequence LIMIT 1;
        IF NOT FOUND THEN
            v_checkpoint_at := v_now;
        END IF;
    END IF;
    v_hash := encode(sha256(convert_to(
        p_head || to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') || p_middle || v_prev
        || p_between || v_sequence::text || p_tail, 'UTF8')), 'hex');
    INSERT INTO audit_auditevent (
        sequence, created_at, actor_type, actor_id, actor_label, action, target_type, target_id, target_label,
        details, details_digest, correlation_id, redacted_at, prev_hash, hash, seal
    ) VALUES (
        v_sequence, v_now, p_actor_type, p_actor_id, p_actor_label, p_action, p_target_type, p_target_id,
        p_target_label, p_details, p_details_digest, p_correlation_id, NULL, v_prev, v_hash, p_seal
    );
    RETURN QUERY SELECT v_sequence, v_now, v_prev, v_hash, v_checkpoint_sequence, v_checkpoint_at;
END;
$$;
"""

BACKWARD = """DROP FUNCTION IF EXISTS audit_append(
    text, text, text, text, varchar, varchar, varchar, varchar, varchar, varchar, varchar, text, varchar, uuid, varchar
);"""


def forward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)
        previous = importlib.import_module("audit.migrations.0003_append_function")
        schema_editor.execute(previous.FORWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_append_function")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="seal",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        migrations.AddIndex(
            model_name="auditcheckpoint",
            index=models.Index(fields=["sequence"], name="audit_checkpoint_seq_idx"),
        ),
        migrations.RunPython(forward, backward),
    ]
