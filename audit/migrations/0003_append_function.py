"""On PostgreSQL, one function call appends an event: lock the chain, read its end, hash, insert.

A single round trip keeps the chain lock's hold short, which is what bounds appends per second when many
processes write at once. The lock is a transaction-level advisory lock (key 7312050, "audit chain"): held
in memory until the caller's transaction ends, it costs no row write. The hash is computed over the
canonical JSON that ``audit.integrity`` defines: Python sends it cut in four (``canonical_parts``) and the
function fills in the timestamp, the previous hash and the sequence number. Each statement of a plpgsql
function takes a fresh snapshot, so the read of the chain's end, made after the lock is granted, sees the
append that held it before.
"""

from typing import Any

from django.db import migrations

FORWARD = """
CREATE FUNCTION audit_append(
    p_head text, p_middle text, p_between text, p_tail text,
    p_actor_type varchar, p_actor_id varchar, p_actor_label varchar, p_action varchar,
    p_target_type varchar, p_target_id varchar, p_target_label varchar,
    p_details text, p_details_digest varchar, p_correlation_id uuid
) RETURNS TABLE (out_sequence bigint, out_created_at timestamptz, out_prev_hash varchar, out_hash varchar)
LANGUAGE plpgsql AS $$
DECLARE
    v_sequence bigint;
    v_prev varchar;
    v_now timestamptz;
    v_hash varchar;
BEGIN
    PERFORM pg_advisory_xact_lock(7312050);
    SELECT e.sequence, e.hash INTO v_sequence, v_prev FROM audit_auditevent e ORDER BY e.sequence DESC LIMIT 1;
    IF NOT FOUND THEN
        v_sequence := 0;
        v_prev := repeat('0', 64);
    END IF;
    v_sequence := v_sequence + 1;
    v_now := clock_timestamp();
    v_hash := encode(sha256(convert_to(
        p_head || to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') || p_middle || v_prev
        || p_between || v_sequence::text || p_tail, 'UTF8')), 'hex');
    INSERT INTO audit_auditevent (
        sequence, created_at, actor_type, actor_id, actor_label, action, target_type, target_id, target_label,
        details, details_digest, correlation_id, redacted_at, prev_hash, hash
    ) VALUES (
        v_sequence, v_now, p_actor_type, p_actor_id, p_actor_label, p_action, p_target_type, p_target_id,
        p_target_label, p_details, p_details_digest, p_correlation_id, NULL, v_prev, v_hash
    );
    RETURN QUERY SELECT v_sequence, v_now, v_prev, v_hash;
END;
$$;
"""

BACKWARD = """DROP FUNCTION IF EXISTS audit_append(
    text, text, text, text, varchar, varchar, varchar, varchar, varchar, varchar, varchar, text, varchar, uuid
);"""


def forward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_triggers")]

    operations = [migrations.RunPython(forward, backward)]
