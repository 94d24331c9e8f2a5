"""docs/tour.md, run as a reader would: every ```sh block in order, in one bash process, against a live server
with the demo loaded as ``make run`` loads it and a real Celery worker advancing the agent runs.

The page is the test's script:

- ```sh blocks run in one ``bash -euo pipefail``, so shell variables and functions carry over; any failing command
  fails the test, which shows what the script printed.
- ``<!-- tour: environment ... -->`` precedes the block that sets ``STEWARD``, ``TOKEN`` and ``DEMO_PASSWORD`` from
  what ``make run`` printed: the test sets those itself (from what ``manage.py bootstrap`` printed) and checks that
  the block sets nothing else.
- ``<!-- tour: console: <user> <action> ["text"] -->`` is a click in the console that later commands depend on.
  The test makes it where it stands, through the console's own pages (Django's test client, signed in as
  ``<user>`` with the demo password): ``operator replies "..."``, ``operator hands back``, ``approver2 approves``.
- A ```text block right after a ```sh block is that block's expected output, abbreviated: each of its lines must
  appear in the output, in order (runs of spaces count as one, ``…`` stands for anything, and a line that is
  only ``…`` for lines left out). ```json blocks are illustrations and are not checked.

After the script, the database must hold what the tour says happened.
"""

import datetime as dt
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any, NoReturn

import pytest
from django.core.management import call_command
from django.test import Client
from pytest_django.live_server_helper import LiveServer
from rest_framework.authtoken.models import Token

from agents.models import Run, RunStatus
from audit.context import Actor
from audit.models import AuditEvent
from audit.services import audit_chain_verify
from config import serve
from demo.models import DemoHedge, DemoReplenishment
from governance.models import ReviewItem, ReviewKind, ReviewStatus
from personas import flows
from personas.models import Conversation, ConversationStatus

TOUR = Path(__file__).resolve().parent.parent / "docs" / "tour.md"
ENVIRONMENT = ("STEWARD", "TOKEN", "DEMO_PASSWORD")
BASH = shutil.which("bash") or "/bin/bash"
BLOCK_SECONDS = 45  # the longest block waits at most 20 s for the worker (wait_until)

# --- reading the page ------------------------------------------------------------------------------------------


@dataclass
class Block:
    language: str
    text: str
    line: int
    output: list[str] = field(default_factory=list)  # for sh blocks, once run


@dataclass
class Marker:
    text: str
    line: int


FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)[^`]*$")
MARKER = re.compile(r"^<!--\s*tour:\s*(?P<text>.*?)\s*-->\s*$")
CONSOLE = re.compile(r'^console: (?P<user>\w+) (?P<action>replies|hands back|approves)(?: "(?P<text>[^"]+)")?$')


def read_tour(markdown: str) -> list[Block | Marker]:
    """The page's fenced blocks and tour markers, in order (CommonMark fences: ``` or ~~~, closed by a fence of the
    same character at least as long)."""
    items: list[Block | Marker] = []
    lines = markdown.splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        opening = FENCE.match(line)
        if opening is None:
            marker = MARKER.match(line.strip())
            if marker:
                items.append(Marker(marker["text"], number))
            continue
        fence, start, body = opening["fence"], number, []
        while number < len(lines):
            closing = lines[number]
            number += 1
            stripped = closing.strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                break
            body.append(closing)
        else:
            pytest.fail(f"docs/tour.md line {start}: a fenced block is never closed")
        items.append(Block(opening["info"].lower(), "\n".join(body) + "\n", start))
    return items


def check_environment_block(block: Block) -> None:
    """The block the test stands in for may only export the three variables the test provides."""
    assigned = []
    for line in block.text.splitlines():
        code = line.split("#", 1)[0].strip()
        if not code:
            continue
        match = re.fullmatch(r"export (\w+)=\S+", code)
        assert match, f"docs/tour.md line {block.line}: the environment block may only export variables: {line!r}"
        assigned.append(match[1])
    assert sorted(assigned) == sorted(ENVIRONMENT), f"docs/tour.md line {block.line} sets {assigned}"


def expected_lines_missing(expected: str, output: list[str]) -> list[str]:
    """The lines of ``expected`` not found in ``output`` in order (``…`` matches anything; spaces collapse)."""

    def normal(text: str) -> str:
        return " ".join(text.split())

    remaining = [normal(line) for line in output]
    missing = []
    for line in (normal(line) for line in expected.splitlines()):
        if line in {"", "…"}:  # a line of its own: more lines were left out
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in line.split("…")))
        for index, candidate in enumerate(remaining):
            if pattern.fullmatch(candidate):
                remaining = remaining[index + 1 :]
                break
        else:
            missing.append(line)
    return missing


# --- running it ------------------------------------------------------------------------------------------------


class Shell:
    """One ``bash -euo pipefail`` that the blocks are fed to, one at a time, each waited for."""

    SENTINEL = "::tour-block-done::"

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.transcript: list[str] = []
        self.process = subprocess.Popen(
            [BASH, "-euo", "pipefail"],
            cwd=workdir,
            env=env,
            text=True,
            bufsize=1,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def run(self, block: Block) -> None:
        script = self.workdir / f"tour-line-{block.line}.sh"
        script.write_text(block.text)
        self.transcript.append(f"$ # docs/tour.md line {block.line}")
        assert self.process.stdin is not None
        # Sourced, so that variables and functions stay; stdin closed, so no command can read the next block.
        self.process.stdin.write(f"source {script.name} </dev/null\necho {self.SENTINEL}\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + BLOCK_SECONDS
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.fail(f"the block at docs/tour.md line {block.line} took more than {BLOCK_SECONDS} s")
            if line is None:
                code = self.process.wait(timeout=10)
                self.fail(f"the block at docs/tour.md line {block.line} failed (bash exited with {code})")
            if line == self.SENTINEL:
                return
            block.output.append(line)
            self.transcript.append(line)

    def finish(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("exit 0\n")
        self.process.stdin.close()
        code = self.process.wait(timeout=10)
        if code != 0:
            self.fail(f"bash exited with {code}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def fail(self, why: str) -> NoReturn:
        self.close()
        pytest.fail(f"{why}. What the tour printed:\n" + "\n".join(self.transcript[-200:]), pytrace=False)


def console_step(marker: Marker, password: str) -> None:
    """A click in the console, made through its own pages as the person the tour names."""
    step = CONSOLE.match(marker.text)
    assert step, f"docs/tour.md line {marker.line}: unknown console step {marker.text!r}"
    client = Client()
    assert client.login(username=step["user"], password=password), f"{step['user']} cannot sign in"
    if step["action"] in {"replies", "hands back"}:
        conversation = Conversation.objects.get(status=ConversationStatus.ESCALATED)
        page = f"/admin/personas/conversation/{conversation.pk}/change/"
        assert "Answer as an operator" in client.get(page).content.decode()
        button = {"_reply": "Send reply"} if step["action"] == "replies" else {"_hand_back": "Hand back to the persona"}
        response = client.post(page, {"text": step["text"] or "", **button}, follow=True)
    else:
        item = ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL, status=ReviewStatus.PENDING)
        page = f"/admin/governance/reviewitem/{item.pk}/change/"
        content = client.get(page).content.decode()
        shown = re.search(r"bound to digest <code>([0-9a-f]{64})</code>", content)
        assert shown, f"{step['user']} is not offered a decision on {item}"
        approvals = f"{item.decisions.count()} of {item.approvals_required} approval"
        assert f'<span id="asked-approvals">{approvals}' in content, "the page does not say what is asked"
        response = client.post(page, {"digest": shown[1], "comment": "", "_approve": "Approve"}, follow=True)
    said = re.findall(r'<li class="(\w+)">(.*?)</li>', response.content.decode())
    assert response.redirect_chain, response.content.decode()[:2000]
    assert said, "the console said nothing"
    assert all(level == "success" for level, _ in said), said


# --- the test --------------------------------------------------------------------------------------------------


DEMO_PASSWORD_LINE = re.compile(r"Demo users: .*\(password (\S+)\)")
TOKEN_LINE = re.compile(r"Demo API token: (\w+) \(user client, a client application\)")


def credentials_in(printed: str) -> dict[str, str]:
    """The demo password and the API token in what ``make run`` printed, as a reader copies them."""
    password, token = DEMO_PASSWORD_LINE.search(printed), TOKEN_LINE.search(printed)
    assert password, printed
    assert token, printed
    return {"DEMO_PASSWORD": password[1], "TOKEN": token[1]}


@pytest.fixture
def demo(transactional_db: None, settings: Any, tmp_path: Path) -> dict[str, str]:
    """The demo as ``make run`` loads it (``manage.py bootstrap``), with its secrets kept in a var dir of the test's;
    the banner ``make run`` prints once everything answers gives the password and the token."""
    settings.VAR_DIR = tmp_path / "var"
    settings.AUDIT_CHECKPOINT_SINK = f"file:{settings.VAR_DIR / 'audit-checkpoints.jsonl'}"  # the test's own too
    call_command("bootstrap", stdout=StringIO())
    found = credentials_in(serve.banner("8000"))
    assert found["DEMO_PASSWORD"] == (settings.VAR_DIR / "demo-password").read_text().strip()
    assert Token.objects.get(user__username="client").key == found["TOKEN"]
    return found


def test_the_tour_shows_the_banner_make_run_prints() -> None:
    """The sample under "Before you start" has the lines the reader copies, in the shape the banner prints them."""
    sample = TOUR.read_text().split("## Before you start", 1)[1].split("```sh", 1)[0]
    assert set(credentials_in(sample)) == set(ENVIRONMENT) - {"STEWARD"}
    assert "Steward is ready." in sample


@pytest.mark.worker
@pytest.mark.usefixtures("celery_worker")
def test_the_guided_tour(demo: dict[str, str], live_server: LiveServer, tmp_path: Path) -> None:
    items = read_tour(TOUR.read_text())
    blocks = [item for item in items if isinstance(item, Block)]
    languages = {block.language for block in blocks}
    assert languages <= {"sh", "text", "json"}, f"blocks the test would neither run nor check: {languages}"
    assert sum(block.language == "sh" for block in blocks) > 10

    first_day = dt.date.today()  # the KYC persona's date bound moves with it: checked against the days the tour ran
    env = {**os.environ, "STEWARD": live_server.url, **demo}
    shell = Shell(tmp_path, env)
    checks: list[tuple[Block, Block]] = []  # (expected output, the sh block it follows)
    last_run: Block | None = None  # the sh block just run, while nothing else came after it
    skip_next = False
    try:
        for item in items:
            if isinstance(item, Marker):
                last_run = None
                if item.text.startswith("environment"):
                    skip_next = True
                elif item.text.startswith("console:"):
                    console_step(item, demo["DEMO_PASSWORD"])
                else:
                    pytest.fail(f"docs/tour.md line {item.line}: unknown tour marker {item.text!r}")
            elif item.language == "sh" and skip_next:
                check_environment_block(item)
                skip_next, last_run = False, None
            elif item.language == "sh":
                shell.run(item)
                last_run = item
            else:
                if item.language == "text" and last_run is not None:
                    checks.append((item, last_run))
                last_run = None
        shell.finish()
    finally:
        shell.close()

    assert len(checks) > 10, "the expected outputs are not where the test looks for them"
    printed = tmp_path / "tour-output.txt"
    printed.write_text("\n".join(shell.transcript) + "\n")
    for expected, ran in checks:
        missing = expected_lines_missing(expected.text, ran.output)
        assert not missing, (
            f"docs/tour.md line {expected.line}: expected output not printed by the block at line {ran.line}:\n"
            + "\n".join(missing)
            + "\n--- printed:\n"
            + "\n".join(ran.output)
            + f"\n--- everything the tour printed is in {printed}"
        )

    assert_what_the_tour_says_happened(days={first_day, dt.date.today()}, password=demo["DEMO_PASSWORD"])


def assert_what_the_tour_says_happened(*, days: set[dt.date], password: str) -> None:
    # 1. The order agent answered and Sam relayed it; the large replenishment waited and was approved as edited.
    relayed = Conversation.objects.filter(persona__slug="support", messages__text__startswith="Order SO-12345 is in")
    assert relayed.count() == 1
    order_run = Run.objects.get(agent__slug="order-agent")
    assert (order_run.status, order_run.correlation_id) == (RunStatus.SUCCEEDED, relayed.get().correlation_id)
    auditor = Client()
    assert auditor.login(username="auditor", password=password)
    run_page = auditor.get(f"/admin/agents/run/{order_run.pk}/change/").content.decode()
    assert f'href="/admin/personas/conversation/{relayed.get().pk}/change/">its conversation</a>' in run_page
    assert f"/admin/audit/auditevent/?correlation_id={order_run.correlation_id}" in run_page
    restock = Run.objects.get(agent__slug="inventory-agent")
    assert restock.status == RunStatus.SUCCEEDED
    assert restock.input == {"sku": "SKU-123", "quantity": 500}
    assert list(DemoReplenishment.objects.values_list("sku", "quantity", "status")) == [("SKU-123", 200, "placed")]
    restock_approval = ReviewItem.objects.get(kind=ReviewKind.TOOL_APPROVAL, payload__run=str(restock.pk))
    assert restock_approval.status == ReviewStatus.APPROVED
    assert [d.decider_label for d in restock_approval.decisions.all()] == ["approver"]
    edited = AuditEvent.objects.get(action="agent.approval.edited")
    assert (edited.details["before"]["quantity"], edited.details["after"]["quantity"]) == (500, 200)

    # 2. The complaint went to a person, who answered from the console and handed it back.
    escalated = AuditEvent.objects.get(action="persona.conversation.escalated")
    assert escalated.details["reason"].startswith("Complaint: The lamp arrived broken")
    complaint = Conversation.objects.get(pk=escalated.target_id)
    assert complaint.status == ConversationStatus.ACTIVE
    assert complaint.messages.filter(role="operator", author__username="operator").count() == 1
    assert not complaint.messages.filter(text__contains="jo@example.com").exists()
    handover = ReviewItem.objects.get(kind=ReviewKind.HANDOVER)
    assert handover.status == ReviewStatus.RESOLVED

    # 3. One hedge approved by two approvers, executed and compensated; another rejected, and the answer says why.
    hedged, rejected = Run.objects.filter(agent__slug="risk-monitor").order_by("created_at")
    assert hedged.status == RunStatus.ROLLED_BACK
    hedge_approval = ReviewItem.objects.get(payload__run=str(hedged.pk))
    assert hedge_approval.status == ReviewStatus.APPROVED
    assert sorted((d.decider_label, d.decision) for d in hedge_approval.decisions.all()) == [
        ("approver", "approve"),
        ("approver2", "approve"),
    ]
    assert list(DemoHedge.objects.values_list("status", flat=True)) == ["unwound"]
    assert rejected.status == RunStatus.SUCCEEDED
    assert ReviewItem.objects.get(payload__run=str(rejected.pk)).status == ReviewStatus.REJECTED
    assert rejected.result is not None
    assert "rejected by approver (Approver): fx-eur is hedged already." in rejected.result["answer"]

    # 4. The KYC conversation went through its checklist and closed itself; the phone number was never stored.
    kyc = Conversation.objects.get(persona__slug="kyc")
    assert kyc.status == ConversationStatus.CLOSED
    texts = list(kyc.messages.values_list("text", flat=True))
    assert "Jane Doe, call me on [PHONE]" in texts
    assert not any("7946" in text for text in texts)
    latest_births = sorted(flows._shift(day, -1, 18, "y").isoformat() for day in days)
    too_young = [text for text in texts if text.startswith("The date must be on or before")]
    assert len(too_young) == 1
    assert too_young[0] in {
        f"The date must be on or before {day}. You must be 18 or older to open an account." for day in latest_births
    }, (too_young, latest_births)
    assert texts[-1].startswith("Thank you, Jane Doe.")
    assert texts[-1].endswith("We keep identity records for 5 years, as the law requires.")
    assert kyc.state["slots"] == {
        "full_name": "Jane Doe",
        "birth_date": "1990-04-12",
        "country": "Germany",
        "id_number": "X1234567",
    }

    # And the trail that recorded all of it is intact.
    assert audit_chain_verify(actor=Actor.system("tests")).ok


def test_the_tour_is_linked_from_the_readme() -> None:
    readme = (TOUR.parent.parent / "README.md").read_text()
    assert "[guided tour](docs/tour.md)" in readme


def test_reading_the_page() -> None:
    """The reader of the page: fences of either kind and length, markers, and the check of expected output."""
    items = read_tour(
        "Intro\n<!-- tour: console: operator hands back -->\n````sh\necho '```'\n````\n\n~~~text\nhi\n~~~\n"
    )
    assert [(type(item).__name__, getattr(item, "language", None), item.line) for item in items] == [
        ("Marker", None, 2),
        ("Block", "sh", 3),
        ("Block", "text", 7),
    ]
    assert isinstance(items[1], Block)
    assert items[1].text == "echo '```'\n"
    output = ["active", "  Hello,   Jane", "Order SO-1 is in transit, expected Tuesday"]
    assert expected_lines_missing("Hello, Jane\n…\nOrder SO-1 is … expected …", output) == []
    assert expected_lines_missing("Order SO-1 …\nactive", output) == ["active"]
