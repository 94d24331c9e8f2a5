"""The whole API under a fuzzer: schemathesis generates requests for every operation of the OpenAPI schema, valid
ones and invalid ones, sent to a live server on the test database (the demo loaded, as ``make run`` has it) with the
token of a user of each role, of a user with no role, and with none at all.

Not one answer may be a server error, a status code the schema does not list for the operation, or a body that
does not match the schema of its status. Generation is derandomized, so a run asks what the previous one asked.
"""

import uuid
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from django.core.management import call_command
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from pytest_django.live_server_helper import LiveServer
from rest_framework.authtoken.models import Token
from schemathesis import APIOperation, Case, GenerationMode, openapi
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from agents.models import Run
from agents.services import run_start
from audit.context import Actor
from config import celery_app
from governance.models import GovernedObject, Release, ReviewItem
from governance.roles import Role
from governance.services import user_role_assign
from personas.models import Conversation
from personas.services import conversation_start
from webhooks.models import WebhookEndpoint
from webhooks.services import endpoint_create

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES = 6  # per operation and generation mode: about 900 requests in all
NO_ROLE = "no-role"
ANONYMOUS = "anonymous"


@pytest.fixture
def throwaway_queue() -> Iterator[None]:
    """Runs the fuzzer starts are queued where no worker listens, and the queue is dropped afterwards."""
    default = celery_app.conf.task_default_queue
    queue = f"steward-fuzz-{uuid.uuid4().hex[:8]}"
    celery_app.conf.task_default_queue = queue
    yield
    celery_app.conf.task_default_queue = default
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_delete(queue)  # type: ignore[attr-defined]  # kombu's channels have it


@pytest.fixture
def headers(transactional_db: None, settings: Any, tmp_path: Path, throwaway_queue: None) -> dict[str, dict[str, str]]:
    """The demo as ``make run`` loads it, a user per role (and one with none), and their Authorization headers."""
    settings.VAR_DIR = tmp_path / "var"
    call_command("bootstrap", stdout=StringIO())
    users = {NO_ROLE: User.objects.create_user("fuzz-no-role")}
    for role in Role:
        users[role.value] = User.objects.create_user(f"fuzz-{role.value.lower()}")
        user_role_assign(actor=Actor.system("tests"), user=users[role.value], role=role)
    operator = User.objects.get(username="operator")
    run_start(actor=operator, agent="order-agent", input={"order": "SO-12345"})
    conversation_start(client=users[Role.ADMIN.value], persona="support")
    endpoint_create(actor=users[Role.ADMIN.value], url="https://hooks.example.com/steward", events=["run.finished"])
    tokens = {name: Token.objects.create(user=user).key for name, user in users.items()}
    return {ANONYMOUS: {}} | {name: {"Authorization": f"Token {key}"} for name, key in tokens.items()}


def known_ids() -> dict[str, list[str]]:
    """Ids and slugs of real objects, per resource, so that the fuzzer reaches them and not only 404s."""
    governed = {"agents": "agent", "personas": "persona", "style-guides": "style_guide", "policies": "guardrail_policy"}
    known = {
        resource: list(GovernedObject.objects.filter(kind=kind).values_list("slug", flat=True)[:3])
        for resource, kind in governed.items()
    }
    known["runs"] = [str(pk) for pk in Run.objects.values_list("pk", flat=True)[:3]]
    known["conversations"] = [str(pk) for pk in Conversation.objects.values_list("pk", flat=True)[:3]]
    known["reviews"] = [str(pk) for pk in ReviewItem.objects.values_list("pk", flat=True)[:3]]
    known["releases"] = [str(pk) for pk in Release.objects.values_list("pk", flat=True)[:3]]
    known["webhooks"] = [str(pk) for pk in WebhookEndpoint.objects.values_list("pk", flat=True)[:3]]
    known["tools"] = ["lookup_order", "check_stock"]
    return known


def cases(operation: APIOperation, mode: GenerationMode, known: dict[str, list[str]]) -> SearchStrategy[Case]:
    """Generated cases, and (for valid ones) cases whose path names a real object."""
    generated = operation.as_strategy(generation_mode=mode)
    names = [parameter.name for parameter in operation.path_parameters]
    resource = operation.path.split("/")[2]
    if mode is not GenerationMode.POSITIVE or not names or not known.get(resource):
        return generated
    first, *others = names
    real = [{first: value, **dict.fromkeys(others, "1")} for value in known[resource]]
    return st.one_of(generated, *(operation.as_strategy(generation_mode=mode, path_parameters=p) for p in real))


def fuzz(session: requests.Session, strategy: SearchStrategy[Case], base_url: str, headers: dict[str, Any]) -> int:
    """Send ``EXAMPLES`` cases, each as one of the callers; raise at the first check that fails."""
    sent = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, caller=st.sampled_from(sorted(headers)))
    def check(case: Case, caller: str) -> None:
        nonlocal sent
        sent += 1
        response = case.call(base_url=base_url, session=session, headers=headers[caller], timeout=30)
        case.validate_response(response, checks=CHECKS)

    check()
    return sent


def test_the_api_holds_under_the_fuzzer(live_server: LiveServer, headers: dict[str, dict[str, str]]) -> None:
    schema = openapi.from_url(f"{live_server.url}/api/schema/", headers=headers[Role.ADMIN.value])
    results = list(schema.get_all_operations())
    unreadable = [str(result.err()) for result in results if not isinstance(result, Ok)]
    assert not unreadable, unreadable  # an operation the fuzzer cannot read is one it cannot check
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    known = known_ids()
    failures, sent = [], 0
    # One session, closed at the end: no keep-alive connection holds a server thread (and its database
    # connection) past the test.
    with requests.Session() as session:
        for operation in operations:
            # Only a query or a body can be made invalid: a path's slug or id is any string.
            invalid = [GenerationMode.NEGATIVE] if len(operation.query) or len(operation.body) else []
            for mode in [GenerationMode.POSITIVE, *invalid]:
                try:
                    sent += fuzz(session, cases(operation, mode, known), live_server.url, headers)
                except (Exception, FailureGroup) as error:  # every operation is fuzzed, the failures reported together
                    failures.append(f"{operation.label} ({mode.value}): {error}")
    assert len(operations) > 60
    assert not failures, f"{len(failures)} failing of {len(operations)} operations, {sent} requests:\n\n" + "\n\n".join(
        failures
    )
