"""The demo's cast: one user for each role, sharing a password kept in ``var/demo-password``, and the demo's client
application, whose API token is the demo API token (a Client talks to personas and starts runs, and nothing else;
the people deciding and undoing sign in as themselves)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from audit.context import Actor
from governance.management.commands.bootstrap import secret_file
from governance.roles import Role
from governance.services import user_role_assign

DEMO_USERS = {
    "viewer": Role.VIEWER,
    "auditor": Role.AUDITOR,
    "editor": Role.EDITOR,
    "approver": Role.APPROVER,
    "approver2": Role.APPROVER,
    "operator": Role.OPERATOR,
    "client": Role.CLIENT,
}
DEMO_CLIENT = "client"


def load(*, actor: Actor) -> tuple[User, list[User]]:
    """The demo users, each created once with their role, and the client's token; the editor and the two approvers
    the rest of the demo is drafted and approved by."""
    user_model = get_user_model()
    demo_password = secret_file(settings.VAR_DIR / "demo-password")
    for username, role in DEMO_USERS.items():
        user, created = user_model._default_manager.get_or_create(username=username)
        if created:
            user.set_password(demo_password)
            user.save(update_fields=["password"])
            user_role_assign(actor=actor, user=user, role=role)
    Token.objects.get_or_create(user=user_model._default_manager.get(username=DEMO_CLIENT))
    users = user_model._default_manager
    editor = users.get(username="editor")
    approvers = [users.get(username="approver"), users.get(username="approver2")]
    return editor, approvers


def credentials() -> list[str]:
    """How the demo users and the demo client sign in, for ``make run``'s banner (``config.serve``)."""
    demo_file = settings.VAR_DIR / "demo-password"
    if not demo_file.exists():
        return ["  No demo users yet: run `python manage.py bootstrap` (make run does) and start again."]
    token = Token.objects.filter(user__username=DEMO_CLIENT).values_list("key", flat=True).first()
    return [
        f"  Demo users:     {', '.join(DEMO_USERS)} (password {demo_file.read_text().strip()}), one role each",
        f"  Demo API token: {token or 'none yet'} (user {DEMO_CLIENT}, a client application)",
    ]
