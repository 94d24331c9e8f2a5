"""Governance services: roles, API tokens, and governed configuration from draft to rollback.

Every function here is one state change: it checks who may do it, changes the rows in one transaction, and records
the audit event in that same transaction. API views, admin actions, tasks and management commands all call these,
so they behave the same way everywhere. They live in a module per part of the lifecycle (``access``, ``versions``,
``reviews``, ``releases``, and what they share in ``common``) and are imported from here.
"""

from governance.services.access import (
    api_token_issue,
    role_permission_names,
    roles_sync,
    user_role_assign,
    user_role_revoke,
)
from governance.services.common import audit_actor, label_by_name, require_permission, spec_checksum, user_roles
from governance.services.releases import (
    DEFAULT_LABELS,
    Move,
    label_create,
    label_resolve,
    label_rollback,
    labels_ensure_defaults,
    release_create,
    release_rollback,
)
from governance.services.reviews import (
    review_decide,
    review_item_open,
    review_item_resolve,
    review_item_withdraw,
    review_items_expire,
)
from governance.services.versions import (
    draft_update,
    draft_write_by_system,
    governed_object_create,
    version_submit,
    version_submit_by_system,
)

__all__ = [
    "DEFAULT_LABELS",
    "Move",
    "api_token_issue",
    "audit_actor",
    "draft_update",
    "draft_write_by_system",
    "governed_object_create",
    "label_by_name",
    "label_create",
    "label_resolve",
    "label_rollback",
    "labels_ensure_defaults",
    "release_create",
    "release_rollback",
    "require_permission",
    "review_decide",
    "review_item_open",
    "review_item_resolve",
    "review_item_withdraw",
    "review_items_expire",
    "role_permission_names",
    "roles_sync",
    "spec_checksum",
    "user_role_assign",
    "user_role_revoke",
    "user_roles",
    "version_submit",
    "version_submit_by_system",
]
