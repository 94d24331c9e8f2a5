"""The dashboard above the console's app list (the admin index): whether the workers and beat are up, what needs a
person, what ran, whether the audit trail holds, and the metrics of the last 30 days.

Each panel is shown only to those who may read what it shows, and its links only to those who may follow them:
a Viewer sees the review queue without decide links, and only Auditors (and Admins) see the audit chain.
The page's number of queries does not depend on the amount of data (``tests/console/test_dashboard.py`` pins it).
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.models import User
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from config import health
from console import selectors
from console.api import METRICS_PERMISSIONS, MetricsSerializer
from governance.models import ReviewItem, ReviewKind, ReviewStatus
from governance.selectors import own_work
from personas.models import Conversation
from personas.services import REPLY_PERMISSION

REVIEW_ROWS = 10
RUNS_WINDOW = dt.timedelta(hours=24)


@dataclass(frozen=True)
class ReviewRow:
    item: ReviewItem
    url: str
    overdue: bool
    action: str = ""  # "Decide" or "Answer", for those who may
    action_url: str = ""


def _review_row(item: ReviewItem, user: User, now: dt.datetime) -> ReviewRow:
    url = reverse("admin:governance_reviewitem_change", args=[item.pk])
    overdue = item.due_at < now
    if item.kind == ReviewKind.HANDOVER:
        # A hand-over is answered in its conversation, by an Operator.
        if user.has_perm(REPLY_PERMISSION) and item.subject_type == Conversation._meta.label_lower:
            conversation = reverse("admin:personas_conversation_change", args=[item.subject_id])
            return ReviewRow(item, url, overdue, "Answer", conversation)
    elif user.has_perm("governance.decide_reviewitem") and not own_work(user, item):
        return ReviewRow(item, url, overdue, "Decide", url)
    return ReviewRow(item, url, overdue)


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    """What the dashboard shows ``request.user``: a panel per section they may read, ``None`` for the others."""
    user = request.user
    assert isinstance(user, User)  # the admin lets only signed-in staff reach its index
    now = timezone.now()
    context: dict[str, Any] = {"now": now, "review": None, "runs": None, "chain": None, "metrics": None}
    context["processes"] = health.processes(redis_status=health.redis_status())
    if user.has_perm("governance.view_reviewitem"):
        queue = selectors.review_queue(now=now, limit=REVIEW_ROWS)
        changelist = reverse("admin:governance_reviewitem_changelist")
        context["review"] = {
            "pending": queue.pending,
            "overdue": queue.overdue,
            "rows": [_review_row(item, user, now) for item in queue.items],
            "all_url": f"{changelist}?{urlencode({'status__exact': ReviewStatus.PENDING})}",
        }
    if user.has_perm("agents.view_run"):
        since = now - RUNS_WINDOW
        counts = selectors.runs_by_status(since=since)
        changelist = reverse("admin:agents_run_changelist")
        since_text = since.isoformat(timespec="seconds")
        context["runs"] = {
            "rows": [
                (label, count, f"{changelist}?{urlencode({'status__exact': status, 'created_at__gte': since_text})}")
                for status, label, count in counts.by_status
            ],
            "total": counts.total,
            "capped": counts.capped,
            "cap": selectors.RUN_COUNT_CAP,
        }
    if user.has_perm("audit.view_auditevent"):
        chain = selectors.audit_chain_status()
        context["chain"] = {
            "status": chain,
            "verify_url": reverse("admin:audit_auditevent_verify") if user.has_perm("audit.verify_auditevent") else "",
            "checkpoints_url": reverse("admin:audit_auditcheckpoint_changelist"),
        }
    if user.has_perms(METRICS_PERMISSIONS):
        context["metrics"] = MetricsSerializer(selectors.metrics(days=selectors.DEFAULT_DAYS, now=now)).data
        context["metrics_url"] = reverse("metrics")
    return context
