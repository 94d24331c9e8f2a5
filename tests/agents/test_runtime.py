"""The agent runtime's rules, driven in-process: runs are started through the service (their enqueue is captured,
never sent), then advanced with ``runtime.advance`` as a worker would, and judged by the stored runs, steps,
review items and audit trail.

Tools run in a helper thread with a database connection of its own, so these tests commit their data
(``transactional_db``); spec validation, the scripted provider and the API need no committed data.
"""

import datetime as dt
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.test import APIClient

from agents import providers, runtime, services
from agents.models import Run, RunOutcome, RunStatus, Step, StepKind, StepStatus
from agents.runtime import conversation, lease, loop, model_call, session
from agents.runtime.lease import ADVANCE_TASK
from audit.context import Actor
from audit.models import AuditEvent
from config import enqueue
from config.errors import Conflict, NotAllowed
from demo.models import DemoAlert
from governance import services as governance_services
from governance.demo import released
from governance.guardrails import POLICY_KIND
from governance.models import ReviewItem, ReviewKind, ReviewStatus
from governance.registry import get_kind
from governance.roles import Role
from governance.services import user_role_assign
from tests.agents.unit_tools import notes, release_agent, spec, start_run
from tests.support import tools_release

OWNER = "test-owner"
# After a tool call, the scripted model answers with what it was told: the error of a denied or failed call.
TELL = [{"when": "has(last.error)", "answer": "told: {{ last.error }}"}, {"answer": "done: {{ last }}"}]
Capture = Callable[..., Any]


@pytest.fixture
def synced(db: None, approver: User) -> None:
    tools_release(approver, names=())


@pytest.fixture
def committed(transactional_db: None, synced: None) -> None:
    """Data committed for real: the tool threads read it on their own connections."""


@pytest.fixture
def second_approver(make_user: Callable[..., User]) -> User:
    return make_user("bea-second-approver", Role.APPROVER)


@pytest.fixture
def unit_agent(editor: User, approver: User) -> Callable[..., str]:
    """Release an agent under production: ``unit_agent(slug, script, grants=, autonomy=, budgets=, model=)``."""

    def release(slug: str, script: list[dict[str, Any]] | None, **options: Any) -> str:
        release_agent(editor, approver, slug, spec(script, **options))
        return slug

    return release


@pytest.fixture
def policy(editor: User, approver: User, second_approver: User) -> Callable[..., None]:
    """Release a guardrail policy under production (two approvers, as policies need)."""

    def release(slug: str, **fields: Any) -> None:
        released(editor, [approver, second_approver], POLICY_KIND, slug, slug, {"severity": "high", **fields})

    return release


@pytest.fixture
def run_to_rest(committed: None, operator: User, django_capture_on_commit_callbacks: Capture) -> Callable[..., Run]:
    """Start a run as the operator and advance it until it finishes or parks."""

    def run(slug: str, run_input: dict[str, Any] | None = None) -> Run:
        started = start_run(django_capture_on_commit_callbacks, operator, slug, run_input or {})
        runtime.advance(started.pk, OWNER)
        return Run.objects.get(pk=started.pk)

    return run


def tool_steps(run: Run) -> list[Step]:
    return list(run.steps.filter(kind=StepKind.TOOL_CALL).order_by("seq"))


def events(run: Run, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(correlation_id=run.correlation_id, action=action).order_by("sequence"))


def said(run: Run) -> list[dict[str, Any]]:
    """The messages the model is given next, made of the run's committed steps."""
    spec = runtime.context_of(run).spec
    return conversation.messages(spec, run.input, run.steps.order_by("seq"))


def assert_denied_and_told(run: Run, reason: str) -> Step:
    """The run's only tool call was denied for ``reason``, not executed, and the model was told why."""
    assert run.status == RunStatus.SUCCEEDED, run.error
    [step] = tool_steps(run)
    assert step.status == StepStatus.DENIED
    assert reason in step.error
    assert step.result is None
    tool_message = {"role": "tool", "tool_call_id": step.call_id, "content": json.dumps({"error": step.error})}
    assert tool_message in said(run)
    assert run.result == {"answer": f"told: {step.error}"}
    [denied] = events(run, "agent.tool.denied")
    assert denied.details == {"tool": step.detail["tool_name"], "reason": step.error}
    assert events(run, "agent.tool.executing") == []
    return step


def assert_parked(run: Run, reason: str) -> ReviewItem:
    assert run.status == RunStatus.AWAITING_APPROVAL, run.error
    assert (run.lease_owner, run.lease_expires_at) == ("", None)
    step = run.steps.get(status=StepStatus.AWAITING_APPROVAL)
    assert step.review is not None
    item = step.review
    assert (item.kind, item.status) == (ReviewKind.TOOL_APPROVAL, ReviewStatus.PENDING)
    assert reason in item.reason
    assert item.payload["tool"] == step.detail["tool_name"]
    assert item.payload["arguments"] == step.arguments
    [requested] = events(run, "agent.approval.requested")
    assert requested.details["review"] == item.pk
    return item


# --- the agent spec ---------------------------------------------------------------------------------------------

VALID: dict[str, Any] = spec(
    [
        {"call": "unit.echo", "arguments": {"text": "input.text"}},
        {"when": "has(last.error)", "answer": "failed: {{ last.error }}"},
        {"answer": "said {{ last.echo }}"},
    ],
    grants=[
        {"tool": "unit.echo", "constraints": ["args.text.size() < 100"], "expires_at": "2100-01-01T00:00:00Z"},
        {"tool": "unit.note", "approval": {"when": "args.message.size() > 10"}},
    ],
)


def changed(path: list[Any], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(VALID))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


@pytest.mark.parametrize(
    ("agent_spec", "path", "message"),
    [
        (changed(["grants", 1, "tool"], "unit.nope"), "grants[1].tool", "There is no tool 'unit.nope'."),
        (changed(["grants", 1, "tool"], "unit.echo"), "grants[1].tool", "The tool 'unit.echo' is granted twice."),
        (changed(["grants", 1, "approval"], {"when": "args.message.size() >"}), "grants[1].approval.when", "compile"),
        (changed(["grants", 0, "constraints"], ["true", "args.text = 'x'"]), "grants[0].constraints[1]", "compile"),
        (changed(["grants", 0, "expires_at"], "next tuesday"), "grants[0].expires_at", "2027-01-31T18:00:00Z"),
        (changed(["script", 1, "when"], "has(last.error"), "script[1].when", "compile"),
        (changed(["script", 0, "arguments"], {"text": "input.("}), "script[0].arguments.text", "compile"),
        (changed(["script", 2, "answer"], "said {{ last.echo + }}"), "script[2].answer", "compile"),
        (changed(["script", 0, "call"], "unit.wire"), "script[0].call", "'unit.wire', which is not granted"),
        ({k: v for k, v in VALID.items() if k != "script"}, "script", "A scripted model needs a script."),
        (changed(["model"], {"provider": "openai", "name": "gpt"}), "script", "Only the scripted provider"),
        (changed(["escalation"], {"budget_overrun": "ask"}), "escalation.budget_overrun", "is not one of"),
        (changed(["memory"], {"scope": "forever"}), "memory.scope", "is not one of"),
    ],
    ids=[
        "unknown-tool",
        "granted-twice",
        "approval-when",
        "constraint",
        "expires-at",
        "script-when",
        "script-arguments",
        "answer-template",
        "ungranted-call",
        "no-script",
        "script-for-openai",
        "escalation",
        "memory",
    ],
)
def test_an_invalid_agent_spec_is_refused_at_the_path_of_its_mistake(
    synced: None, agent_spec: dict[str, Any], path: str, message: str
) -> None:
    assert get_kind("agent").validate(VALID) == {}
    errors = get_kind("agent").validate(agent_spec)
    assert list(errors) == [path]
    assert len(errors[path]) == 1
    assert message in errors[path][0]


# --- the scripted provider --------------------------------------------------------------------------------------

SCRIPT: list[dict[str, Any]] = [
    {"call": "unit.echo", "arguments": {"text": "input.word + '!'", "count": "size(results)"}},
    {"when": "last.echo == 'nope'", "answer": "never"},
    {"call": "unit.echo", "arguments": {"text": "results[0].echo + last.echo"}},
    {"answer": "{{ input.word }} gave {{ last.echo }} after {{ size(results) }} calls; last {{ last }}"},
]


def complete(messages: list[dict[str, Any]]) -> providers.Completion:
    return providers.ScriptedProvider().complete(model={}, messages=messages, tools=[], timeout=1, script=SCRIPT)


def test_the_scripted_provider_follows_its_script_over_input_results_and_last() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": json.dumps({"word": "hi"})},
    ]
    first = complete(messages)
    [call] = first.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_1", "unit.echo", {"text": "hi!", "count": 0})
    assert first.message["tool_calls"][0]["function"]["name"] == "unit__echo"
    assert first.message["meta"] == {"script_position": 1}
    assert first.input_tokens > 0
    assert first.output_tokens > 0

    messages += [first.message, {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"echo": "ho"})}]
    second = complete(messages)  # entry 2's ``when`` does not hold: skipped
    [call] = second.tool_calls
    assert (call.id, call.arguments) == ("call_3", {"text": "hoho"})

    messages += [second.message, {"role": "tool", "tool_call_id": "call_3", "content": json.dumps({"echo": "xy"})}]
    third = complete(messages)
    assert third.tool_calls == ()
    assert third.text == 'hi gave xy after 2 calls; last {"echo": "xy"}'
    assert third.message == {"role": "assistant", "content": third.text, "meta": {"script_position": 4}}

    with pytest.raises(providers.ProviderError, match="ran out of entries") as ran_out:
        complete([*messages, third.message])
    assert ran_out.value.retryable is False


def test_the_scripted_provider_reports_an_expression_that_fails() -> None:
    messages = [{"role": "system", "content": "x"}, {"role": "user", "content": json.dumps({"other": 1})}]
    with pytest.raises(providers.ProviderError, match="script entry 1: no such member in mapping: 'word'") as failed:
        complete(messages)  # input.word is missing
    assert failed.value.retryable is False


# --- grants -----------------------------------------------------------------------------------------------------


def test_an_expired_grant_denies_and_the_model_is_told(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    call = {"call": "unit.echo", "arguments": {"text": "'hi'"}}
    unit_agent("fresh", [call, *TELL], grants=[{"tool": "unit.echo", "expires_at": "2100-01-01T00:00:00Z"}])
    unit_agent("stale", [call, *TELL], grants=[{"tool": "unit.echo", "expires_at": "2020-01-01T00:00:00Z"}])
    fresh = run_to_rest("fresh")
    assert fresh.result == {"answer": 'done: {"echo": "hi"}'}
    assert_denied_and_told(run_to_rest("stale"), "the grant for 'unit.echo' expired at 2020-01-01T00:00:00+00:00")


def test_arguments_that_break_the_tool_schema_are_denied(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    unit_agent("typed", [{"call": "unit.echo", "arguments": {"text": "42"}}, *TELL])
    assert_denied_and_told(run_to_rest("typed"), "invalid arguments: text: 42 is not of type 'string'")


def test_a_constraint_that_does_not_hold_denies(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    grants = [{"tool": "unit.echo", "constraints": ["args.text.size() <= 3"]}]
    unit_agent("short", [{"call": "unit.echo", "arguments": {"text": "input.text"}}, *TELL], grants=grants)
    assert run_to_rest("short", {"text": "ok"}).result == {"answer": 'done: {"echo": "ok"}'}
    assert_denied_and_told(
        run_to_rest("short", {"text": "too long"}), "the arguments break the constraint 'args.text.size() <= 3'"
    )


def test_a_constraint_that_cannot_be_checked_denies(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    grants = [{"tool": "unit.echo", "constraints": ["args.amount > 1"]}]
    unit_agent("fragile", [{"call": "unit.echo", "arguments": {"text": "'x'"}}, *TELL], grants=grants)
    step = assert_denied_and_told(run_to_rest("fragile"), "the constraint 'args.amount > 1' could not be checked")
    assert "no such member in mapping: 'amount'" in step.error
    assert step.error.endswith("denied (fail-safe)")


def test_the_rate_limit_counts_calls_across_runs_of_the_agent(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    grants = [{"tool": "unit.note", "rate_limit": {"calls": 1, "per_seconds": 3600}}]
    unit_agent("limited", [{"call": "unit.note", "arguments": {"message": "'hello'"}}, *TELL], grants=grants)
    first = run_to_rest("limited")
    assert [step.status for step in tool_steps(first)] == [StepStatus.SUCCEEDED]
    assert_denied_and_told(run_to_rest("limited"), "the rate limit of 1 calls per 3600 s is used up")
    assert notes() == ["hello"]


def test_an_observing_agent_reads_but_may_not_write(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    script = [
        {"call": "unit.echo", "arguments": {"text": "'look'"}},
        {"call": "unit.note", "arguments": {"message": "'touch'"}},
        *TELL,
    ]
    unit_agent("watcher", script, autonomy="observe")
    run = run_to_rest("watcher")
    read, write = tool_steps(run)
    assert (read.status, read.result) == (StepStatus.SUCCEEDED, {"echo": "look"})
    assert (write.status, write.error) == (StepStatus.DENIED, "the agent only observes: write tools are not allowed")
    assert run.result == {"answer": f"told: {write.error}"}
    assert notes() == []


def test_a_proposing_agent_parks_every_write(unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]) -> None:
    script = [
        {"call": "unit.echo", "arguments": {"text": "'look'"}},
        {"call": "unit.note", "arguments": {"message": "'small'"}},
        *TELL,
    ]
    unit_agent("proposer", script, autonomy="propose")
    run = run_to_rest("proposer")
    item = assert_parked(run, "the agent proposes: every write needs approval")
    assert [step.status for step in tool_steps(run)] == [StepStatus.SUCCEEDED, StepStatus.AWAITING_APPROVAL]
    assert item.approvals_required == 1
    assert item.requested_by == run.requested_by
    assert notes() == []


def test_a_supervised_agent_parks_only_high_and_critical_writes(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    script = [
        {"call": "unit.note", "arguments": {"message": "'medium risk'"}},
        {"call": "unit.wire", "arguments": {"amount": "100"}},
        *TELL,
    ]
    unit_agent("supervised", script, autonomy="supervised")
    run = run_to_rest("supervised")
    item = assert_parked(run, "supervised agent, high-risk write")
    assert [step.status for step in tool_steps(run)] == [StepStatus.SUCCEEDED, StepStatus.AWAITING_APPROVAL]
    assert item.approvals_required == 1
    assert notes() == ["medium risk"]

    unit_agent("launcher", [{"call": "unit.launch", "arguments": {"target": "'moon'"}}, *TELL], autonomy="supervised")
    critical = assert_parked(run_to_rest("launcher"), "supervised agent, critical-risk write")
    assert critical.approvals_required == 2


def test_a_grant_that_always_needs_approval_parks_even_a_read(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    grants = [{"tool": "unit.echo", "approval": "always"}]
    unit_agent("careful", [{"call": "unit.echo", "arguments": {"text": "'hi'"}}, *TELL], grants=grants)
    assert_parked(run_to_rest("careful"), "the grant for 'unit.echo' always needs approval")


def test_a_grant_approval_condition_parks_only_when_it_holds(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    grants = [{"tool": "unit.note", "approval": {"when": "args.message.size() > 5"}}]
    unit_agent("conditional", [{"call": "unit.note", "arguments": {"message": "input.message"}}, *TELL], grants=grants)
    assert run_to_rest("conditional", {"message": "tiny"}).status == RunStatus.SUCCEEDED
    assert_parked(run_to_rest("conditional", {"message": "rather long"}), "condition 'args.message.size() > 5' holds")
    assert notes() == ["tiny"]


# --- action guardrail policies ----------------------------------------------------------------------------------

NOTE_SCRIPT = [{"call": "unit.note", "arguments": {"message": "input.message"}}, *TELL]


def test_an_action_policy_that_denies_stops_the_tool_call(
    unit_agent: Callable[..., str], policy: Callable[..., None], run_to_rest: Callable[..., Run]
) -> None:
    policy(
        "no-secrets",
        checkpoint="action",
        condition="tool == 'unit.note' && args.message.contains('secret')",
        effect="deny",
        message="No secrets in notes.",
    )
    unit_agent("scribe", NOTE_SCRIPT)
    assert run_to_rest("scribe", {"message": "public"}).status == RunStatus.SUCCEEDED
    run = run_to_rest("scribe", {"message": "the secret plan"})
    step = assert_denied_and_told(run, "denied by policy: policy 'no-secrets' v1")
    assert "No secrets in notes." in step.error
    assert step.detail["guardrail"]["effect"] == "deny"
    [matched] = events(run, "governance.guardrail.matched")
    assert (matched.details["checkpoint"], matched.details["effect"]) == ("action", "deny")
    assert matched.target_id == str(step.pk)
    assert notes() == ["public"]


def test_an_action_policy_that_redacts_masks_what_the_tool_gets_the_approver_sees_and_the_trail_records(
    unit_agent: Callable[..., str], policy: Callable[..., None], run_to_rest: Callable[..., Run]
) -> None:
    policy("mask-emails", checkpoint="action", condition="pii_found", effect="redact", redact=["email"])
    unit_agent("scribe", NOTE_SCRIPT)
    run = run_to_rest("scribe", {"message": "write to ann@example.com"})
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert notes() == ["write to [EMAIL]"]
    [step] = tool_steps(run)
    assert (step.arguments, step.detail["redacted"]) == ({"message": "write to [EMAIL]"}, ["email"])
    assert events(run, "agent.tool.executing")[0].details["arguments"] == {"message": "write to [EMAIL]"}
    tool_side = [event.details for event in events(run, "agent.tool.executing") + events(run, "agent.tool.succeeded")]
    assert "ann@example.com" not in json.dumps([step.arguments, step.detail, step.result, tool_side])

    unit_agent("careful-scribe", NOTE_SCRIPT, grants=[{"tool": "unit.note", "approval": "always"}])
    parked = run_to_rest("careful-scribe", {"message": "call ann@example.com"})
    assert parked.status == RunStatus.AWAITING_APPROVAL
    item = ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL, status=ReviewStatus.PENDING)
    assert item.payload["arguments"] == {"message": "call [EMAIL]"}


def test_an_action_policy_that_requires_approval_parks(
    unit_agent: Callable[..., str], policy: Callable[..., None], run_to_rest: Callable[..., Run]
) -> None:
    policy(
        "medium-writes",
        checkpoint="action",
        condition="side_effect == 'write' && risk == 'medium'",
        effect="require_approval",
        message="Medium writes need a person.",
    )
    unit_agent("scribe", NOTE_SCRIPT)
    item = assert_parked(run_to_rest("scribe", {"message": "hello"}), "policy: policy 'medium-writes' v1")
    assert "Medium writes need a person." in item.reason
    assert notes() == []


def test_a_policy_released_after_a_run_started_does_not_apply_to_it(
    unit_agent: Callable[..., str],
    policy: Callable[..., None],
    operator: User,
    committed: None,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    unit_agent("scribe", NOTE_SCRIPT)
    before = start_run(django_capture_on_commit_callbacks, operator, "scribe", {"message": "early"})
    policy("no-notes", checkpoint="action", condition="tool == 'unit.note'", effect="deny")
    after = start_run(django_capture_on_commit_callbacks, operator, "scribe", {"message": "late"})
    runtime.advance(before.pk, OWNER)
    runtime.advance(after.pk, OWNER)
    before.refresh_from_db()
    after.refresh_from_db()
    assert before.policy_versions == []
    assert [(pinned["slug"], pinned["version"]) for pinned in after.policy_versions] == [("no-notes", 1)]
    assert [step.status for step in tool_steps(before)] == [StepStatus.SUCCEEDED]
    assert_denied_and_told(after, "denied by policy: policy 'no-notes' v1")
    assert notes() == ["early"]


# --- input and output guardrails --------------------------------------------------------------------------------


def test_an_input_policy_that_denies_fails_the_run_before_the_model_is_called(
    unit_agent: Callable[..., str], policy: Callable[..., None], run_to_rest: Callable[..., Run]
) -> None:
    policy("no-codes", checkpoint="input", condition="text.contains('launch code')", effect="deny", message="Not here.")
    unit_agent("answerer", [{"answer": "fine"}])
    assert run_to_rest("answerer", {"ask": "the weather"}).result == {"answer": "fine"}
    run = run_to_rest("answerer", {"ask": "the launch code"})
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("The input guardrails decided deny: policy 'no-codes' v1")
    [step] = run.steps.all()
    assert (step.kind, step.status, step.detail["checkpoint"]) == (StepKind.GUARDRAIL, StepStatus.DENIED, "input")
    assert run.steps_used == run.tokens_used == 0
    assert len(events(run, "agent.run.failed")) == 1


def test_an_output_policy_that_redacts_changes_the_answer(
    unit_agent: Callable[..., str], policy: Callable[..., None], run_to_rest: Callable[..., Run]
) -> None:
    policy("no-emails-out", checkpoint="output", condition="pii_found", effect="redact", redact=["email"])
    unit_agent("mailer", [{"answer": "Write to {{ input.who }} at bob@example.com today."}])
    run = run_to_rest("mailer", {"who": "Bob"})
    assert run.status == RunStatus.SUCCEEDED
    assert run.result == {"answer": "Write to Bob at [EMAIL] today."}
    guardrail, message = run.steps.filter(kind__in=[StepKind.GUARDRAIL, StepKind.MESSAGE]).order_by("seq")
    assert (guardrail.detail["checkpoint"], guardrail.detail["effect"]) == ("output", "redact")
    assert message.detail == {"text": "Write to Bob at [EMAIL] today."}
    assert "bob@example.com" not in json.dumps([step.detail for step in run.steps.exclude(kind=StepKind.LLM_CALL)])


# --- memory -----------------------------------------------------------------------------------------------------

CLERK = [
    {"when": "size(memory) == 0", "answer": "{{ input.item }}: nothing remembered"},
    {"answer": "{{ input.item }}: {{ size(memory) }} remembered, the last {{ memory[0].input.item }}"},
]


def test_a_run_remembers_the_latest_runs_of_its_requester_newest_first(
    unit_agent: Callable[..., str],
    run_to_rest: Callable[..., Run],
    make_user: Callable[..., User],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    unit_agent("clerk", CLERK, memory={"scope": "requester", "runs": 2})
    answers = [run_to_rest("clerk", {"item": item}).result for item in ("tea", "milk", "sugar", "salt")]
    assert answers == [
        {"answer": "tea: nothing remembered"},
        {"answer": "milk: 1 remembered, the last tea"},
        {"answer": "sugar: 2 remembered, the last milk"},
        {"answer": "salt: 2 remembered, the last sugar"},
    ]
    last = Run.objects.get(input={"item": "salt"})
    [recalled] = last.steps.filter(kind=StepKind.MEMORY)
    assert [(entry["input"], entry["answer"]) for entry in recalled.detail["runs"]] == [
        ({"item": "sugar"}, "sugar: 2 remembered, the last milk"),
        ({"item": "milk"}, "milk: 1 remembered, the last tea"),
    ]
    assert recalled.seq == 1  # before the first model call, recorded once
    assert events(last, "agent.memory.recalled")[0].details == {
        "scope": "requester",
        "runs": [entry["run"] for entry in recalled.detail["runs"]],
    }
    remembered = said(last)[1]
    assert remembered["role"] == "system"
    assert remembered["content"].startswith(conversation.REMEMBERED)
    assert "sugar: 2 remembered" in remembered["content"]

    # Another requester's run remembers nothing of these.
    other = make_user("olga-operator", Role.OPERATOR)
    run = start_run(django_capture_on_commit_callbacks, other, "clerk", {"item": "pepper"})
    runtime.advance(run.pk, OWNER)
    run.refresh_from_db()
    assert run.result == {"answer": "pepper: nothing remembered"}


def test_an_agent_wide_memory_spans_requesters_and_keeps_inputs_as_the_guardrails_masked_them(
    unit_agent: Callable[..., str],
    policy: Callable[..., None],
    run_to_rest: Callable[..., Run],
    make_user: Callable[..., User],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    policy("no-emails-in", checkpoint="input", condition="pii_found", effect="redact", redact=["email"])
    unit_agent("town-crier", CLERK, memory={"scope": "agent"})
    first = run_to_rest("town-crier", {"item": "a note for ann@example.com"})
    assert first.status == RunStatus.SUCCEEDED, first.error
    other = make_user("olga-operator", Role.OPERATOR)
    run = start_run(django_capture_on_commit_callbacks, other, "town-crier", {"item": "bread"})
    runtime.advance(run.pk, OWNER)
    run.refresh_from_db()
    assert run.result == {"answer": "bread: 1 remembered, the last a note for [EMAIL]"}
    [recalled] = run.steps.filter(kind=StepKind.MEMORY)
    assert "ann@example.com" not in json.dumps(recalled.detail)


def test_without_a_memory_scope_a_run_remembers_nothing(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    unit_agent("goldfish", CLERK)
    assert run_to_rest("goldfish", {"item": "tea"}).result == {"answer": "tea: nothing remembered"}
    run = run_to_rest("goldfish", {"item": "milk"})
    assert run.result == {"answer": "milk: nothing remembered"}
    assert not run.steps.filter(kind=StepKind.MEMORY).exists()
    assert events(run, "agent.memory.recalled") == []


# --- budgets ----------------------------------------------------------------------------------------------------

ECHO_THEN_ANSWER = [{"call": "unit.echo", "arguments": {"text": "'x'"}}, *TELL]


def test_the_step_budget_stops_the_run_before_the_next_model_call(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    unit_agent("roomy", ECHO_THEN_ANSWER, budgets={"steps": 3})
    assert run_to_rest("roomy").status == RunStatus.SUCCEEDED
    unit_agent("tight", ECHO_THEN_ANSWER, budgets={"steps": 2})
    run = run_to_rest("tight")
    assert run.status == RunStatus.FAILED
    assert run.error == "Budget: the step budget (2) would be exceeded."
    assert run.steps.filter(kind=StepKind.LLM_CALL).count() == 1
    last = run.steps.order_by("seq").last()
    assert last is not None
    assert (last.kind, last.error) == (
        StepKind.ERROR,
        "stopped before a model call: the step budget (2) would be exceeded",
    )
    assert run.steps_used == 2
    assert events(run, "agent.run.failed")[0].details["error"] == run.error


def test_the_token_budget_counts_max_tokens_before_the_call(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    model = {"provider": "scripted", "name": "unit-script", "parameters": {"max_tokens": 5000}}
    unit_agent("verbose", [{"answer": "hi"}], budgets={"steps": 5, "tokens": 1000}, model=model)
    run = run_to_rest("verbose")
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("Budget: the token budget (1000) would be exceeded: 0 used, ~50")
    assert not run.steps.filter(kind=StepKind.LLM_CALL).exists()
    assert run.tokens_used == 0

    unit_agent("modest", [{"answer": "hi"}], budgets={"steps": 5, "tokens": 1000})
    modest = run_to_rest("modest")
    assert modest.status == RunStatus.SUCCEEDED
    assert modest.tokens_used == sum(step.tokens for step in modest.steps.all()) > 0


def test_the_cost_budget_prices_the_call_before_it_is_made(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    cheap = {"provider": "scripted", "name": "unit-script", "pricing": {"input_per_1k": 0.01, "output_per_1k": 0.02}}
    unit_agent("cheap", [{"answer": "hi"}], budgets={"steps": 5, "cost": 1}, model=cheap)
    run = run_to_rest("cheap")
    assert run.status == RunStatus.SUCCEEDED
    assert 0 < run.cost_used == sum(step.cost for step in run.steps.all())

    dear = {**cheap, "pricing": {"input_per_1k": 100}}
    unit_agent("dear", [{"answer": "hi"}], budgets={"steps": 5, "cost": 0.01}, model=dear)
    run = run_to_rest("dear")
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("Budget: the cost budget (0.01) would be exceeded")
    assert not run.steps.filter(kind=StepKind.LLM_CALL).exists()


def test_a_run_past_its_wall_time_times_out(
    unit_agent: Callable[..., str], operator: User, committed: None, django_capture_on_commit_callbacks: Capture
) -> None:
    unit_agent("slowpoke", [{"answer": "hi"}], budgets={"steps": 5, "wall_seconds": 60})
    run = start_run(django_capture_on_commit_callbacks, operator, "slowpoke", {})
    Run.objects.filter(pk=run.pk).update(started_at=timezone.now() - dt.timedelta(seconds=61))
    runtime.advance(run.pk, OWNER)
    run.refresh_from_db()
    assert run.status == RunStatus.TIMED_OUT
    assert run.error == "The wall-time budget ran out."
    [step] = run.steps.all()
    assert (step.kind, step.error) == (StepKind.ERROR, "the wall-time budget (60 s) ran out")
    assert len(events(run, "agent.run.timed_out")) == 1


def test_time_spent_waiting_for_a_person_does_not_count_against_wall_time(
    unit_agent: Callable[..., str],
    operator: User,
    approver: User,
    committed: None,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    grants = [{"tool": "unit.echo", "approval": "always"}]
    script = [{"call": "unit.echo", "arguments": {"text": "'hi'"}}, *TELL]
    unit_agent("patient", script, budgets={"steps": 5, "wall_seconds": 60}, grants=grants)
    run = start_run(django_capture_on_commit_callbacks, operator, "patient", {})
    runtime.advance(run.pk, OWNER)
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL
    # The approver takes two minutes: more than the whole wall-time budget.
    Run.objects.filter(pk=run.pk).update(
        started_at=F("started_at") - dt.timedelta(seconds=120), parked_at=F("parked_at") - dt.timedelta(seconds=120)
    )
    item = ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL, status=ReviewStatus.PENDING)
    with transaction.atomic():
        governance_services.review_decide(actor=approver, item=item, decision="approve", digest=item.digest)
        assert len(connection.run_on_commit) == 1  # the resume is enqueued after commit; this test advances it
        connection.run_on_commit.clear()
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert run.waited_seconds >= 120
    runtime.advance(run.pk, OWNER)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error


# --- budget overruns in the review queue ---------------------------------------------------------------------------

REVIEW_OVERRUNS = {"budget_overrun": "review"}
NOTE_THEN_ANSWER = [{"call": "unit.note", "arguments": {"message": "'restock'"}}, {"answer": "noted"}]


def decide_now(actor: User, item: ReviewItem, decision: str, comment: str = "") -> None:
    """Decide in a transaction of its own; the resume it enqueues after commit is dropped (the test advances)."""
    with transaction.atomic():
        governance_services.review_decide(
            actor=actor, item=item, decision=decision, digest=item.digest, comment=comment
        )
        connection.run_on_commit.clear()


def overrun_item() -> ReviewItem:
    return ReviewItem.objects.get(kind=ReviewKind.BUDGET_OVERRUN, status=ReviewStatus.PENDING)


def test_a_budget_overrun_under_review_waits_for_a_person_who_may_grant_the_budget_once_more(
    unit_agent: Callable[..., str],
    operator: User,
    approver: User,
    committed: None,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    unit_agent("frugal", NOTE_THEN_ANSWER, budgets={"steps": 1}, escalation=REVIEW_OVERRUNS)
    run = start_run(django_capture_on_commit_callbacks, operator, "frugal", {})
    runtime.advance(run.pk, OWNER)
    run.refresh_from_db()
    # The model call used the one step; the tool call would be the second: it waits, proposed, not called.
    assert (run.status, run.steps_used, notes()) == (RunStatus.AWAITING_APPROVAL, 1, [])
    assert [step.status for step in tool_steps(run)] == [StepStatus.PROPOSED]
    item = overrun_item()
    assert item.reason == "The step budget (1) would be exceeded, before a tool call: approving grants 1 more."
    assert (item.payload["budget"], item.payload["limit"], item.payload["extension"]) == ("steps", 1, 1)
    assert item.requested_by == operator
    [asked] = run.steps.filter(kind=StepKind.APPROVAL)
    assert (asked.status, asked.review) == (StepStatus.AWAITING_APPROVAL, item)
    assert events(run, "agent.budget.overrun")[0].details["budget"] == "steps"

    with pytest.raises(NotAllowed):  # not by whoever started the run
        decide_now(operator, item, "approve")
    decide_now(approver, item, "approve")
    run.refresh_from_db()
    assert (run.status, run.budget_extensions) == (RunStatus.QUEUED, {"steps": 1})
    assert events(run, "agent.budget.extended")[0].details["extension"] == 1

    runtime.advance(run.pk, OWNER)  # the tool is called (step 2); the answer would be step 3: asked again
    run.refresh_from_db()
    assert (run.status, notes()) == (RunStatus.AWAITING_APPROVAL, ["restock"])
    assert overrun_item().reason.startswith("The step budget (2) would be exceeded, before a model call")
    decide_now(approver, overrun_item(), "approve")
    runtime.advance(run.pk, OWNER)
    run.refresh_from_db()
    assert (run.status, run.result, run.steps_used) == (RunStatus.SUCCEEDED, {"answer": "noted"}, 3)
    assert run.budget_extensions == {"steps": 2}
    assert notes() == ["restock"]  # called once
    assert [s.status for s in run.steps.filter(kind=StepKind.APPROVAL)] == [StepStatus.SUCCEEDED] * 2


def test_a_refused_budget_overrun_fails_the_run_and_the_call_is_never_made(
    unit_agent: Callable[..., str],
    operator: User,
    approver: User,
    committed: None,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    unit_agent("frugal", NOTE_THEN_ANSWER, budgets={"steps": 1}, escalation=REVIEW_OVERRUNS)
    run = start_run(django_capture_on_commit_callbacks, operator, "frugal", {})
    runtime.advance(run.pk, OWNER)
    decide_now(approver, overrun_item(), "reject", "one step is enough")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    who = f"{approver.username} (Approver)"
    assert run.error == f"Budget: the step budget (1) would be exceeded; rejected by {who}: one step is enough."
    [call] = tool_steps(run)
    assert (call.status, call.error) == (StepStatus.DENIED, "not called: more steps budget was refused")
    assert notes() == []
    assert events(run, "agent.budget.refused")[0].details["budget"] == "steps"
    assert events(run, "agent.run.failed")[0].details["error"] == run.error


def test_a_budget_overrun_is_an_approval_of_the_api_decided_by_anyone_but_whoever_started_the_run(
    unit_agent: Callable[..., str],
    operator: User,
    approver: User,
    committed: None,
    django_capture_on_commit_callbacks: Capture,
    api_as: Callable[[User], APIClient],
) -> None:
    unit_agent("frugal", NOTE_THEN_ANSWER, budgets={"steps": 1}, escalation=REVIEW_OVERRUNS)
    run = start_run(django_capture_on_commit_callbacks, operator, "frugal", {})
    runtime.advance(run.pk, OWNER)
    item = overrun_item()
    listed = api_as(approver).get("/api/approvals/", {"kind": "budget_overrun"}).json()["results"]
    assert [(entry["id"], entry["kind"]) for entry in listed] == [(item.pk, "budget_overrun")]
    pending = api_as(approver).get("/api/reviews/", {"status": "pending", "limit": "200"}).json()["results"]
    assert item.pk in [entry["id"] for entry in pending]  # the review queue has it too
    shown = api_as(approver).get(f"/api/approvals/{item.pk}/").json()
    assert (shown["digest"], shown["run"]["id"], shown["payload"]["budget"]) == (item.digest, str(run.pk), "steps")

    url = f"/api/approvals/{item.pk}/decide/"
    edit = {"decision": "edit", "digest": item.digest, "arguments": {"steps": 100}}
    not_editable = api_as(approver).post(url, edit, format="json")
    assert (not_editable.status_code, not_editable.json()["error"]["code"]) == (409, "not_editable")
    approve = {"decision": "approve", "digest": item.digest}
    user_role_assign(actor=Actor.system("tests"), user=operator, role=Role.APPROVER)  # may decide, but not this
    refused = api_as(operator).post(url, approve, format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "self_review")
    with transaction.atomic():  # the resume is enqueued after commit: captured, never sent (the test advances)
        with django_capture_on_commit_callbacks(execute=False) as enqueued:
            decided = api_as(approver).post(url, approve, format="json")
        connection.run_on_commit.clear()
    assert (decided.status_code, decided.json()["status"], len(enqueued)) == (200, "approved", 1)
    run.refresh_from_db()
    assert (run.status, run.budget_extensions) == (RunStatus.QUEUED, {"steps": 1})
    detail = api_as(operator).get(f"/api/runs/{run.pk}/").json()
    assert detail["budget_extensions"] == {"steps": 1}
    assert [s["status"] for s in detail["steps"] if s["kind"] == "approval"] == ["succeeded"]


def test_a_zero_budget_is_not_sent_for_review_as_there_is_nothing_to_grant_again(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    priced = {"provider": "scripted", "name": "unit-script", "pricing": {"input_per_1k": 0.01}}
    unit_agent("free", [{"answer": "hi"}], budgets={"steps": 5, "cost": 0}, model=priced, escalation=REVIEW_OVERRUNS)
    run = run_to_rest("free")
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("Budget: the cost budget (0) would be exceeded")
    assert not ReviewItem.objects.filter(kind=ReviewKind.BUDGET_OVERRUN).exists()


def test_an_unanswered_wall_time_overrun_expires_and_the_run_times_out(
    unit_agent: Callable[..., str], operator: User, committed: None, django_capture_on_commit_callbacks: Capture
) -> None:
    unit_agent("dawdler", [{"answer": "hi"}], budgets={"steps": 5, "wall_seconds": 60}, escalation=REVIEW_OVERRUNS)
    run = start_run(django_capture_on_commit_callbacks, operator, "dawdler", {})
    Run.objects.filter(pk=run.pk).update(started_at=timezone.now() - dt.timedelta(seconds=61))
    runtime.advance(run.pk, OWNER)
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL
    assert overrun_item().payload["budget"] == "wall_seconds"

    assert governance_services.review_items_expire(now=timezone.now() + dt.timedelta(days=2)) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.TIMED_OUT
    assert run.error == (
        "Budget: the wall-time budget (60 s) ran out; the approval expired before anyone decided: expiry denies."
    )
    assert not run.steps.filter(kind=StepKind.LLM_CALL).exists()


# --- tools that fail --------------------------------------------------------------------------------------------


def test_a_failing_tool_fails_its_step_and_the_run_goes_on(
    unit_agent: Callable[..., str], run_to_rest: Callable[..., Run]
) -> None:
    script = [
        {"call": "unit.boom"},
        {"call": "unit.slow", "arguments": {"seconds": "1.0"}},
        {"call": "unit.not_json"},
        {"answer": "{{ results[0].error }} | {{ results[1].error }} | {{ results[2].error }}"},
    ]
    unit_agent("clumsy", script)
    run = run_to_rest("clumsy")
    assert run.status == RunStatus.SUCCEEDED, run.error
    errors = [
        "RuntimeError: the boom tool exploded",
        "timed out after 0.2 s",
        "the tool returned something that is not JSON: Object of type set is not JSON serializable",
    ]
    assert [(step.status, step.error) for step in tool_steps(run)] == [(StepStatus.FAILED, e) for e in errors]
    assert run.result == {"answer": " | ".join(errors)}
    assert [event.details["error"] for event in events(run, "agent.tool.failed")] == errors


def test_planning_that_fails_after_a_tool_call_keeps_its_result_and_the_run_resumes_without_repeating_it(
    unit_agent: Callable[..., str],
    operator: User,
    committed: None,
    django_capture_on_commit_callbacks: Capture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unit_agent(
        "shaky",
        [
            {"call": "unit.note", "arguments": {"message": "'first'"}},
            {"call": "unit.note", "arguments": {"message": "'second'"}},
            {"answer": "noted"},
        ],
    )
    run = start_run(django_capture_on_commit_callbacks, operator, "shaky", {})
    planned = model_call.next_call
    calls = []

    def failing_after_the_first(held: session.Session) -> Any:
        calls.append(held.run.pk)
        if len(calls) == 2:  # planning the model call after the first note was recorded
            raise RuntimeError("planning broke")
        return planned(held)

    monkeypatch.setattr(model_call, "next_call", failing_after_the_first)
    with pytest.raises(RuntimeError, match="planning broke"):
        runtime.advance(run.pk, "worker-a")
    [first] = tool_steps(run)
    assert notes() == ["first"]
    assert (first.status, first.result) == (
        StepStatus.SUCCEEDED,
        {"note_id": DemoAlert.objects.get(message="first").pk},
    )
    assert [event.details["tool"] for event in events(run, "agent.tool.succeeded")] == ["unit.note"]

    Run.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    runtime.advance(run.pk, "worker-b")
    run.refresh_from_db()
    assert (run.status, run.result) == (RunStatus.SUCCEEDED, {"answer": "noted"})
    assert notes() == ["first", "second"]
    assert [step.status for step in tool_steps(run)] == [StepStatus.SUCCEEDED, StepStatus.SUCCEEDED]
    assert len(events(run, "agent.tool.succeeded")) == 2


# --- leases -----------------------------------------------------------------------------------------------------


def test_a_held_lease_keeps_other_workers_out_until_it_expires(
    unit_agent: Callable[..., str], operator: User, committed: None, django_capture_on_commit_callbacks: Capture
) -> None:
    unit_agent("leased", [{"answer": "hi"}])
    run = start_run(django_capture_on_commit_callbacks, operator, "leased", {})
    claimed = lease.claim(run.pk, "worker-a")
    assert claimed is not None
    held = session.Session.load(claimed, "worker-a")
    assert not lease.claim(run.pk, "worker-b")
    runtime.advance(run.pk, "worker-b")
    run.refresh_from_db()
    assert (run.status, run.lease_owner, run.steps.count()) == (RunStatus.RUNNING, "worker-a", 0)

    Run.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert lease.claim(run.pk, "worker-b")
    held.error_step("worker-a goes on as if it still held the lease")
    with pytest.raises(session.LeaseLost):  # worker-a lost its lease: nothing of its step is written
        held.commit()
    assert run.steps.count() == 0
    runtime.advance(run.pk, "worker-b")
    run.refresh_from_db()
    assert (run.status, run.result, run.lease_owner) == (RunStatus.SUCCEEDED, {"answer": "hi"}, "")


def test_a_run_picked_up_too_often_without_progress_is_dead_lettered(
    unit_agent: Callable[..., str],
    operator: User,
    committed: None,
    django_capture_on_commit_callbacks: Capture,
    settings: Any,
) -> None:
    settings.AGENTS_MAX_DELIVERIES = 2
    unit_agent("cursed", [{"answer": "hi"}])
    run = start_run(django_capture_on_commit_callbacks, operator, "cursed", {})
    for owner in ("worker-a", "worker-b"):  # each dies holding the lease, before committing a step
        assert lease.claim(run.pk, owner)
        Run.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    runtime.advance(run.pk, "worker-c")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == "The run was picked up too often without progress (dead letter)."
    [step] = run.steps.all()
    assert (step.kind, step.error) == (StepKind.ERROR, "picked up 2 times without progress: dead letter")
    [failed] = events(run, "agent.run.failed")
    assert failed.actor_type == "agent_run"


# --- cancelling -------------------------------------------------------------------------------------------------


def test_cancelling_a_queued_run_stops_it_at_once(
    unit_agent: Callable[..., str], operator: User, committed: None, django_capture_on_commit_callbacks: Capture
) -> None:
    unit_agent("idle", [{"answer": "hi"}])
    run = start_run(django_capture_on_commit_callbacks, operator, "idle", {})
    services.run_cancel(actor=operator, run=run, reason="not needed")
    runtime.advance(run.pk, OWNER)
    run.refresh_from_db()
    assert (run.status, run.error) == (RunStatus.CANCELLED, "Cancelled by otto-operator: not needed")
    assert run.steps.count() == 0
    [requested] = events(run, "agent.run.cancel_requested")
    assert (requested.actor_label, requested.details["status"]) == ("otto-operator", RunStatus.QUEUED)
    assert len(events(run, "agent.run.cancelled")) == 1


def test_cancelling_a_running_run_stops_it_at_the_next_step(
    unit_agent: Callable[..., str], operator: User, committed: None, django_capture_on_commit_callbacks: Capture
) -> None:
    unit_agent("busy", [{"answer": "hi"}])
    run = start_run(django_capture_on_commit_callbacks, operator, "busy", {})
    assert lease.claim(run.pk, OWNER)
    services.run_cancel(actor=operator, run=run)
    run.refresh_from_db()
    assert (run.status, run.cancel_requested) == (RunStatus.RUNNING, True)
    runtime.advance(run.pk, OWNER)
    run.refresh_from_db()
    assert (run.status, run.error) == (RunStatus.CANCELLED, "Cancelled on request.")
    assert not run.steps.filter(kind=StepKind.LLM_CALL).exists()


def test_cancelling_a_run_awaiting_approval_withdraws_the_approval(
    unit_agent: Callable[..., str], operator: User, run_to_rest: Callable[..., Run]
) -> None:
    unit_agent(
        "careful",
        [{"call": "unit.echo", "arguments": {"text": "'hi'"}}, *TELL],
        grants=[{"tool": "unit.echo", "approval": "always"}],
    )
    run = run_to_rest("careful")
    item = assert_parked(run, "always needs approval")
    services.run_cancel(actor=operator, run=run)
    run.refresh_from_db()
    item.refresh_from_db()
    assert (run.status, run.error) == (RunStatus.CANCELLED, "Cancelled by otto-operator.")
    assert item.status == ReviewStatus.WITHDRAWN
    [step] = tool_steps(run)
    assert (step.status, step.error) == (StepStatus.DENIED, "the run was cancelled")


def test_a_finished_run_cannot_be_cancelled(
    unit_agent: Callable[..., str], operator: User, run_to_rest: Callable[..., Run]
) -> None:
    unit_agent("quick", [{"answer": "hi"}])
    run = run_to_rest("quick")
    with pytest.raises(Conflict, match="succeeded already") as refused:
        services.run_cancel(actor=operator, run=run)
    assert refused.value.code == "finished"
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert events(run, "agent.run.cancel_requested") == []


# --- compensation -----------------------------------------------------------------------------------------------


def test_compensation_undoes_write_steps_newest_first(
    unit_agent: Callable[..., str], operator: User, run_to_rest: Callable[..., Run]
) -> None:
    script = [
        {"call": "unit.note", "arguments": {"message": "'first'"}},
        {"call": "unit.echo", "arguments": {"text": "'read only'"}},
        {"call": "unit.note", "arguments": {"message": "'second'"}},
        *TELL,
    ]
    unit_agent("writer", script)
    run = run_to_rest("writer")
    assert run.status == RunStatus.SUCCEEDED, run.error
    first, _, second = tool_steps(run)
    assert first.result is not None
    assert second.result is not None
    services.compensate(run.pk, operator.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.ROLLED_BACK
    undos = list(run.steps.filter(compensates__isnull=False).order_by("seq"))
    assert [undo.compensates_id for undo in undos] == [second.pk, first.pk]
    assert [(undo.status, undo.arguments) for undo in undos] == [
        (StepStatus.SUCCEEDED, {"note_id": second.result["note_id"], "why": "undo second"}),
        (StepStatus.SUCCEEDED, {"note_id": first.result["note_id"], "why": "undo first"}),
    ]
    assert notes() == ["struck: undo first", "struck: undo second"]
    assert [step.status for step in tool_steps(run) if step.compensates_id is None] == [
        StepStatus.COMPENSATED,
        StepStatus.SUCCEEDED,
        StepStatus.COMPENSATED,
    ]
    assert [event.target_id for event in events(run, "agent.tool.compensated")] == [str(second.pk), str(first.pk)]
    [done] = events(run, "agent.run.compensated")
    assert done.details == {"complete": True, "status": RunStatus.ROLLED_BACK, "outcome": RunOutcome.NOT_COMPLETED}
    assert done.actor_label == "otto-operator"


def test_a_write_without_compensation_goes_to_a_person_and_the_run_is_not_rolled_back(
    unit_agent: Callable[..., str], operator: User, run_to_rest: Callable[..., Run]
) -> None:
    script = [
        {"call": "unit.note", "arguments": {"message": "'memo'"}},
        {"call": "unit.wire", "arguments": {"amount": "250"}},
        *TELL,
    ]
    unit_agent("payer", script)
    run = run_to_rest("payer")
    assert run.status == RunStatus.SUCCEEDED, run.error
    note_step, wire_step = tool_steps(run)
    services.compensate(run.pk, operator.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    wire_undo, note_undo = run.steps.filter(compensates__isnull=False).order_by("seq")
    assert (wire_undo.compensates_id, wire_undo.status) == (wire_step.pk, StepStatus.FAILED)
    assert wire_undo.error == "unit.wire has no compensation: it is not reversible"
    assert (note_undo.compensates_id, note_undo.status) == (note_step.pk, StepStatus.SUCCEEDED)
    item = ReviewItem.objects.get(subject_type="agents.step", subject_id=str(wire_undo.pk))
    assert (item.kind, item.status, item.payload["question"]) == (
        ReviewKind.TOOL_APPROVAL,
        ReviewStatus.PENDING,
        "manual_undo",
    )
    assert item.payload["arguments"] == {"amount": 250}
    wire_step.refresh_from_db()
    assert wire_step.status == StepStatus.SUCCEEDED
    assert notes() == ["struck: undo memo", "wired 250"]
    [not_reversible] = events(run, "agent.tool.not_reversible")
    assert not_reversible.target_id == str(wire_step.pk)
    [done] = events(run, "agent.run.compensated")
    assert done.details == {"complete": False, "status": RunStatus.SUCCEEDED, "outcome": RunOutcome.COMPLETED}

    # Compensating again does not ask twice about the write a person is undoing by hand.
    services.compensate(run.pk, operator.pk)
    assert ReviewItem.objects.filter(payload__question="manual_undo").count() == 1

    # The person undoes it by hand and approves: the write counts as compensated, the run is rolled back.
    second = User.objects.create_user("second-approver")
    user_role_assign(actor=Actor.system("tests"), user=second, role=Role.APPROVER)
    governance_services.review_decide(
        actor=second, item=item, decision="approve", digest=item.digest, comment="reversed the transfer by hand"
    )
    wire_step.refresh_from_db()
    run.refresh_from_db()
    assert (wire_step.status, run.status) == (StepStatus.COMPENSATED, RunStatus.ROLLED_BACK)
    [by_hand] = events(run, "agent.tool.undone_by_hand")
    assert by_hand.target_id == str(wire_step.pk)


# --- the API ----------------------------------------------------------------------------------------------------


@pytest.fixture
def hello(synced: None, editor: User, approver: User) -> str:
    release_agent(editor, approver, "hello", spec([{"answer": "hi"}]))
    return "hello"


@pytest.fixture
def client_user(make_user: Callable[..., User]) -> Callable[[str], User]:
    """A client application's user: it may start runs, and has no role (so it may not read other runs)."""

    def make(name: str) -> User:
        user = make_user(name)
        user.user_permissions.add(Permission.objects.get(content_type__app_label="agents", codename="start_run"))
        return user

    return make


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": "text"}, "Expected a dictionary"),
        ({"input": [1]}, "Expected a dictionary"),
        ({}, "This field is required."),
    ],
)
def test_starting_a_run_with_bad_input_is_refused_with_field_errors(
    api_as: Callable[[User], APIClient], operator: User, hello: str, body: dict[str, Any], message: str
) -> None:
    response = api_as(operator).post(f"/api/agents/{hello}/runs/", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["input"]
    assert message in error["fields"]["input"][0]
    assert not Run.objects.exists()


def test_unknown_agents_and_runs_are_not_found(api_as: Callable[[User], APIClient], operator: User, hello: str) -> None:
    client = api_as(operator)
    response = client.post("/api/agents/nobody/runs/", {"input": {}}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not Run.objects.exists()
    for path in ("/api/runs/not-a-uuid/", "/api/runs/00000000-0000-0000-0000-000000000000/"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"] == {"code": "not_found", "message": "There is no such run.", "fields": {}}


def test_a_client_without_view_run_sees_only_its_own_runs(
    api_as: Callable[[User], APIClient],
    client_user: Callable[[str], User],
    viewer: User,
    hello: str,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    ours, theirs = client_user("shop-app"), client_user("other-app")
    started = {}
    for user in (ours, theirs):
        with django_capture_on_commit_callbacks(execute=False) as enqueued:
            response = api_as(user).post(f"/api/agents/{hello}/runs/", {"input": {"who": user.username}}, format="json")
        assert response.status_code == 202, response.json()
        assert len(enqueued) == 1
        started[user.username] = response.json()["id"]

    listed = api_as(ours).get("/api/runs/").json()["results"]
    assert [run["id"] for run in listed] == [started["shop-app"]]
    assert api_as(ours).get(f"/api/runs/{started['other-app']}/").status_code == 404
    assert api_as(ours).get(f"/api/runs/{started['shop-app']}/").status_code == 200
    everything = api_as(viewer).get("/api/runs/").json()["results"]
    assert {run["id"] for run in everything} == set(started.values())


def test_a_viewer_cannot_start_runs(api_as: Callable[[User], APIClient], viewer: User, hello: str) -> None:
    response = api_as(viewer).post(f"/api/agents/{hello}/runs/", {"input": {}}, format="json")
    assert response.status_code == 403
    assert not Run.objects.exists()
    assert not AuditEvent.objects.filter(action="agent.run.started").exists()


def test_the_tool_list_shows_each_tool_with_its_schema(
    api_as: Callable[[User], APIClient], viewer: User, approver: User, synced: None
) -> None:
    tools_release(approver)
    response = api_as(viewer).get("/api/tools/", {"limit": 200})
    assert response.status_code == 200
    tools = {tool["name"]: tool for tool in response.json()["results"]}
    assert tools["unit.echo"] == {
        "name": "unit.echo",
        "description": "Say the text back.",
        "kind": "python",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": False,
        },
        "side_effect": "read",
        "risk": "low",
        "idempotent": True,
        "timeout_seconds": 10.0,
        "compensation": None,
        "available": True,
        "label": "production",
        "version": 1,
        "labels": {"production": 1, "staging": 1},
        "request": None,
    }
    assert tools["unit.note"]["compensation"] == {
        "tool": "unit.unnote",
        "arguments": {"note_id": "result.note_id", "why": "'undo ' + args.message"},
    }
    assert (tools["unit.wire"]["side_effect"], tools["unit.wire"]["risk"]) == ("write", "high")


def test_a_warm_shutdown_during_a_model_call_starts_none_of_the_calls_it_proposes(
    unit_agent: Callable[..., str],
    operator: User,
    committed: None,
    django_capture_on_commit_callbacks: Capture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unit_agent("writer", NOTE_THEN_ANSWER)
    run = start_run(django_capture_on_commit_callbacks, operator, "writer", {})
    monkeypatch.setattr(loop, "_stopping", threading.Event())
    complete = providers.ScriptedProvider.complete

    def asked_to_stop_meanwhile(self: Any, **kwargs: Any) -> Any:
        loop.stop_after_this_step()  # SIGTERM arrives while the model answers
        return complete(self, **kwargs)

    monkeypatch.setattr(providers.ScriptedProvider, "complete", asked_to_stop_meanwhile)
    sent: list[tuple[Any, ...]] = []  # what is sent to workers is kept here, so that no worker takes the run up
    monkeypatch.setattr(enqueue, "send", lambda task, *args: sent.append((task, *args)))
    runtime.advance(run.pk, OWNER)
    run.refresh_from_db()
    assert (run.status, run.lease_owner) == (RunStatus.QUEUED, "")
    assert sent == [(ADVANCE_TASK, str(run.pk))]  # handed back to the queue
    [call] = Step.objects.filter(run=run, kind=StepKind.TOOL_CALL)
    assert call.status == StepStatus.PROPOSED  # the reply is kept; the write was neither made nor marked executing
    assert notes() == []
