"""The six roles of DESIGN.md, and the Client role of client applications, as permission patterns over
``app_label.codename``.

Patterns use shell wildcards; a leading ``-`` removes what earlier patterns granted. Later apps add
models and custom permissions (``submit_*``, ``decide_*``, ``start_run`` ...); the patterns pick them up
each time the roles are synced (after every ``migrate``).
"""

from enum import StrEnum

READ_CONFIGURATION = ["governance.view_*", "agents.view_*", "personas.view_*", "evaluations.view_*"]


class Role(StrEnum):
    VIEWER = "Viewer"
    AUDITOR = "Auditor"
    EDITOR = "Editor"
    APPROVER = "Approver"
    OPERATOR = "Operator"
    ADMIN = "Admin"
    # A client application's API user: talks to personas and starts runs (and sees and cancels its own), nothing else.
    CLIENT = "Client"


# Roles of people, who sign in to the console. A Client is an application: API only, never staff.
CONSOLE_ROLES = frozenset(Role) - {Role.CLIENT}


ROLE_PERMISSIONS: dict[Role, list[str]] = {
    Role.VIEWER: READ_CONFIGURATION,
    Role.AUDITOR: [*READ_CONFIGURATION, "audit.view_*", "audit.verify_*", "audit.export_*"],
    Role.EDITOR: [
        *READ_CONFIGURATION,
        "governance.add_governedobject",
        "governance.change_governedobject",
        "governance.add_guardrailpolicy",
        "governance.change_guardrailpolicy",
        "personas.add_*",
        "personas.change_*",
        "agents.add_*",
        "agents.change_*",
        "evaluations.add_*",
        "evaluations.change_*",
        "*.submit_*",
        # Tools and grants are the Admin's (DESIGN.md, Roles).
        "-agents.add_tool",
        "-agents.change_tool",
        "-agents.delete_tool",
    ],
    Role.APPROVER: [*READ_CONFIGURATION, "*.decide_*", "governance.release_version", "governance.rollback_version"],
    Role.OPERATOR: [
        *READ_CONFIGURATION,
        "agents.start_*",
        "agents.cancel_*",
        "agents.compensate_*",
        "personas.reply_*",
        # Undoing is operations' work too: an Operator rolls a bad release back (but releases nothing).
        "governance.rollback_version",
    ],
    Role.ADMIN: ["*"],
    Role.CLIENT: ["agents.start_run"],
}

ROLE_DESCRIPTIONS: dict[Role, str] = {
    Role.VIEWER: "read configuration, runs, conversations",
    Role.AUDITOR: "Viewer + read the audit trail, verify it, export it",
    Role.EDITOR: "edit drafts, submit versions for review",
    Role.APPROVER: "decide reviews and approvals, never their own submissions or requests; release and roll back",
    Role.OPERATOR: "start and cancel runs, answer escalated conversations, compensate runs, roll releases back",
    Role.ADMIN: "everything, plus users, roles, tools and grants",
    Role.CLIENT: "a client application (API only): talk to personas, start runs and see and cancel its own",
}
