"""A run's outcome, apart from its status: the two fields, and the outcome of every run that finished before them,
decided by the same rules (``agents.outcomes``) from its steps."""

from typing import Any

from django.db import migrations, models

BATCH = 500


def backfill(apps: Any, schema_editor: Any) -> None:
    from agents import outcomes

    Run = apps.get_model("agents", "Run")
    Step = apps.get_model("agents", "Step")
    finished = Run.objects.filter(outcome__isnull=True, finished_at__isnull=False).order_by("pk")
    ids = list(finished.values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH):
        batch = list(Run.objects.filter(pk__in=ids[start : start + BATCH]))
        steps: dict[Any, list[outcomes.StepFacts]] = {run.pk: [] for run in batch}
        rows = (
            Step.objects.filter(run__in=batch, kind__in=["tool_call", "approval", "guardrail"])
            .order_by("run_id", "seq")
            .values_list(
                "run_id",
                "kind",
                "status",
                "tool__name",
                "tool__side_effect",
                "error",
                "result",
                "detail",
                "review__status",
                "compensates_id",
            )
        )
        for run_id, kind, status, tool, side_effect, error, result, detail, review, compensates in rows:
            steps[run_id].append(
                outcomes.StepFacts(
                    kind=kind,
                    status=status,
                    tool=tool or (detail or {}).get("tool_name", ""),
                    write=side_effect == "write",
                    error=error,
                    result=result,
                    detail=detail,
                    review_status=review or "",
                    compensates=compensates is not None,
                )
            )
        for run in batch:
            answer = run.result.get("answer") if isinstance(run.result, dict) else None
            decided = outcomes.decide(status=run.status, steps=steps[run.pk], answer=answer, error=run.error)
            run.outcome, run.outcome_reason = decided.outcome, decided.reason
        Run.objects.bulk_update(batch, ["outcome", "outcome_reason"])


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0007_run_budget_extensions_memory"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="outcome",
            field=models.CharField(
                blank=True,
                choices=[("completed", "completed"), ("not_completed", "not completed"), ("escalated", "escalated")],
                help_text="What the run achieved, set as it finishes; empty while it is not finished.",
                max_length=20,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="run",
            name="outcome_reason",
            field=models.CharField(blank=True, help_text="Why the run has that outcome.", max_length=500),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
