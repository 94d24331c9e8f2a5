"""Which API keys and hosts a model may use: the one definition, for validation, review and every call.

A model (an agent version's ``model``, a persona's ``llm_phrasing``) names the environment variable holding its
key (``api_key_env``) and may name a server (``base_url``). Left unchecked, a version could hand any of the worker's
variables to any host as a bearer key: ``PATH``, or Steward's own ``SECRET_KEY``. So the variable must match
``MODEL_KEY_VARIABLES`` (shell patterns) and is refused by name when it is one of Steward's own secrets, whatever
the patterns say; the host must match ``MODEL_ALLOWED_HOSTS``, as an HTTP tool's host must match its allowed hosts.
Reviewers see both as a check on the version.
"""

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from governance.checks import CheckResult, Finding

DEFAULT_KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
DEFAULT_HOSTS = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}
# Steward's own secrets and connection strings: never a model's key, whatever MODEL_KEY_VARIABLES allows.
STEWARD_SECRETS = frozenset(
    {"SECRET_KEY", "AUDIT_CHECKPOINT_KEY", "TOOL_SECRETS_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
)


def key_variable(model: Mapping[str, Any]) -> str:
    return str(model.get("api_key_env") or DEFAULT_KEY_VARIABLES.get(str(model.get("provider")), ""))


def host(model: Mapping[str, Any]) -> str:
    """The host the model's requests go to: its ``base_url``'s, else the provider's own."""
    base_url = model.get("base_url")
    if base_url:
        return (urlsplit(str(base_url)).hostname or "").lower()
    return DEFAULT_HOSTS.get(str(model.get("provider")), "")


def key_problem(variable: str) -> str:
    if variable in STEWARD_SECRETS:
        return f"{variable} is one of Steward's own secrets: it is never sent to a model."
    if not any(fnmatchcase(variable, pattern) for pattern in settings.MODEL_KEY_VARIABLES):
        allowed = ", ".join(settings.MODEL_KEY_VARIABLES)
        return f"{variable} is not among the variables models may read (MODEL_KEY_VARIABLES: {allowed})."
    return ""


def host_problem(name: str) -> str:
    if not name:
        return "The model's base_url names no host."
    if not any(fnmatchcase(name, pattern.lower()) for pattern in settings.MODEL_ALLOWED_HOSTS):
        allowed = ", ".join(settings.MODEL_ALLOWED_HOSTS)
        return f"The host {name} is not among the hosts models may be reached at (MODEL_ALLOWED_HOSTS: {allowed})."
    return ""


def field_errors(model: Mapping[str, Any], prefix: str) -> dict[str, list[str]]:
    """Field errors of a model that is not scripted: ``{prefix}.api_key_env`` and ``{prefix}.base_url``."""
    errors: dict[str, list[str]] = {}
    if problem := key_problem(key_variable(model)):
        errors[f"{prefix}.api_key_env"] = [problem]
    if problem := host_problem(host(model)):
        errors[f"{prefix}.base_url"] = [problem]
    return errors


def refusal(model: Mapping[str, Any]) -> str:
    """Why a call with ``model`` may not be made (the settings may have changed since it was approved), or ""."""
    return key_problem(key_variable(model)) or host_problem(host(model))


def check(model: Mapping[str, Any] | None) -> CheckResult:
    """What the reviewer is shown: the host the model is reached at and the variable its key is read from."""
    if not model or model.get("provider") == "scripted":
        return CheckResult("model.access", (Finding("A scripted model: no key, no host.", "info"),))
    where, variable = host(model), key_variable(model)
    findings = [Finding(f"Requests go to {where}, with the key from {variable}.", "info")]
    findings += [Finding(p, "error", "model") for p in (key_problem(variable), host_problem(where)) if p]
    return CheckResult("model.access", tuple(findings))
