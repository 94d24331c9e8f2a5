"""Governed configuration in the console: drafts, versions with diffs, the review queue, releases.

Every change goes through ``governance.services``: the console refuses exactly what the API refuses
(self-review, stale digests, failing checks, a role without the permission) and says why. Importing this package
registers every page: each module below registers its own.
"""

from governance.admin.base import (
    CompareForm,
    DecideForm,
    DraftForm,
    JSONTextarea,
    ObjectRollbackForm,
    ReadOnly,
    ReasonForm,
    ReleaseForm,
    SubmitForm,
    console_user,
    report_error,
)
from governance.admin.objects import GovernedObjectAdmin, GuardrailPolicyAdmin
from governance.admin.releases import LabelAdmin, LabelPointerAdmin, ReleaseAdmin
from governance.admin.render import render_checks, render_diff, render_side_by_side
from governance.admin.reviews import AgeFilter, ReviewItemAdmin, approval_summary, tool_request
from governance.admin.versions import VersionAdmin

__all__ = [
    "AgeFilter",
    "CompareForm",
    "DecideForm",
    "DraftForm",
    "GovernedObjectAdmin",
    "GuardrailPolicyAdmin",
    "JSONTextarea",
    "LabelAdmin",
    "LabelPointerAdmin",
    "ObjectRollbackForm",
    "ReadOnly",
    "ReasonForm",
    "ReleaseAdmin",
    "ReleaseForm",
    "ReviewItemAdmin",
    "SubmitForm",
    "VersionAdmin",
    "approval_summary",
    "console_user",
    "render_checks",
    "render_diff",
    "render_side_by_side",
    "report_error",
    "tool_request",
]
