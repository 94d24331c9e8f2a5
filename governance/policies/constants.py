"""The vocabulary of guardrail policies: checkpoints, effects, severities, scope types, risk levels and the
limits on order and conditions, shared by the schema, the condition compiler and evaluation."""

from governance.detectors.findings import KINDS

CHECKPOINTS = ("input", "output", "action")
EFFECTS = ("allow", "deny", "redact", "require_approval", "escalate")
TERMINAL_EFFECTS = frozenset({"allow", "deny", "require_approval", "escalate"})
SEVERITIES = ("info", "low", "medium", "high", "critical")
SCOPE_TYPES = ("all", "agent", "persona", "tool", "risk")
RISKS = ("low", "medium", "high", "critical")
REDACT_KINDS = KINDS
DEFAULT_ORDER = 1000
MAX_ORDER = 100_000
MAX_CONDITION_LENGTH = 4000
# celpy's interpreter recurses about five frames per syntax-tree level under a recursion limit of 2500; a deeper
# tree would compile and then fail every evaluation, so it is refused when compiled. Real conditions are < 60.
MAX_CONDITION_DEPTH = 250
