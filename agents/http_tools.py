"""HTTP tools: a request configured in the console, made safely.

The URL's host must be one of the tool's allowed hosts, and every address it resolves to must be public (not
private, loopback, link-local, multicast or reserved) unless the tool explicitly allows private addresses; the
connection goes to the address that was checked, so a name that resolves differently a moment later cannot
redirect it. Redirects are not followed. Header values may read the server's environment (``{{env.NAME}}``);
secret headers are stored encrypted (Fernet, with ``TOOL_SECRETS_KEY``, which is not in the database), are never
shown again, and never reach the audit trail.

``request`` is that safe request on its own, for whatever else calls out (webhooks), and ``encrypt_secret`` /
``decrypt_secret`` the same encryption for other secrets.
"""

import base64
import hashlib
import http.client
import ipaddress
import json
import os
import re
import socket
import ssl
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from agents.models import Tool
from agents.tools import ToolFailure

if TYPE_CHECKING:
    from agents.tool_versions import ToolDefinition

_ENV = re.compile(r"\{\{\s*env\.([A-Z_][A-Z0-9_]*)\s*\}\}")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_RESPONSE = 1_000_000


class RequestFailed(Exception):
    """The request could not be made, or no answer came: trying again later may work."""


class RequestRefused(RequestFailed):
    """The destination is not allowed (scheme, host, address): trying again will not help."""


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    body: bytes  # at most ``max_response`` bytes of it


def _fernet() -> Fernet:
    key = hashlib.sha256(settings.TOOL_SECRETS_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(value: str) -> str:
    """``value`` encrypted for storing (Fernet, with ``TOOL_SECRETS_KEY``)."""
    return _fernet().encrypt(value.encode()).decode()


def decrypt_secret(token: str) -> str:
    """What ``encrypt_secret`` encrypted; ``ValueError`` when it cannot be decrypted (another key)."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("the secret cannot be decrypted: was TOOL_SECRETS_KEY changed?") from None


def encrypt_headers(headers: dict[str, str]) -> str:
    return encrypt_secret(json.dumps(headers)) if headers else ""


def secret_header_names(tool: Tool) -> list[str]:
    return sorted(stored_secrets(tool))


def stored_secrets(tool: Tool) -> dict[str, str]:
    """The tool's secret headers, decrypted; ``ToolFailure`` when they cannot be (another key)."""
    if not tool.secret_headers:
        return {}
    try:
        headers: dict[str, str] = json.loads(_fernet().decrypt(tool.secret_headers.encode()))
    except InvalidToken:
        raise ToolFailure("the tool's secret headers cannot be decrypted: was TOOL_SECRETS_KEY changed?") from None
    return headers


def url_placeholders(template: str) -> list[str]:
    return _PLACEHOLDER.findall(template)


def host_allowed(host: str, allowed: list[str]) -> bool:
    return any(fnmatchcase(host.lower(), pattern.lower()) for pattern in allowed)


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def resolve(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to for ``host``: ``RequestRefused`` when any address it resolves to is private
    (unless ``allow_private``), ``RequestFailed`` when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise RequestFailed(f"cannot resolve {host}: {error}") from None
    addresses = [str(info[4][0]) for info in infos]
    refused = [address for address in addresses if not _public(address)]
    if refused and not allow_private:
        raise RequestRefused(f"{host} resolves to a private or loopback address ({refused[0]}): refused")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def request(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None,
    timeout: float,
    allowed_hosts: list[str] | None = None,
    allow_private: bool = False,
    max_response: int = MAX_RESPONSE,
) -> Response:
    """Make one HTTP request to ``url``, connecting to the address that was checked; redirects are not followed.

    Refused (``RequestRefused``): a URL that is not http(s), a host outside ``allowed_hosts`` (when given), a host
    resolving to a private or loopback address unless ``allow_private``. ``RequestFailed``: the name does not
    resolve, or the connection or the exchange fails. Any answer, whatever its status, is a ``Response``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestRefused(f"not an http(s) URL: {url}")
    if allowed_hosts is not None and not host_allowed(parts.hostname, allowed_hosts):
        raise RequestRefused(f"the host {parts.hostname} is not among the allowed hosts")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve(parts.hostname, port, allow_private)
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(parts.hostname, port, address, timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        content = response.read(max_response + 1)
    except (OSError, http.client.HTTPException) as error:
        raise RequestFailed(f"the request failed: {type(error).__name__}: {error}") from None
    finally:
        connection.close()
    return Response(status=response.status, reason=response.reason, body=content[:max_response])


def call(tool: "ToolDefinition", secrets: dict[str, str], arguments: dict[str, Any], timeout: float) -> Any:
    """Make the request a tool's definition describes with ``arguments`` and the ``secrets`` headers; the JSON
    answer (or ``{"status", "text"}``), else ToolFailure."""
    remaining = dict(arguments)
    try:
        url = _PLACEHOLDER.sub(lambda m: quote(str(remaining.pop(m.group(1))), safe=""), tool.url_template)
    except KeyError as missing:
        raise ToolFailure(f"the URL needs the argument {missing}") from None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolFailure(f"not an http(s) URL: {url}")
    if not host_allowed(parts.hostname, list(tool.allowed_hosts)):
        raise ToolFailure(f"the host {parts.hostname} is not among the tool's allowed hosts")
    headers = {"Accept": "application/json", "User-Agent": "steward-http-tool"}
    for name, value in (tool.headers or {}).items():
        headers[name] = _ENV.sub(lambda m: _environment(m.group(1)), str(value))
    headers.update(secrets)
    query = parts.query
    body = None
    if tool.method in ("POST", "PUT", "PATCH"):
        body = json.dumps(remaining).encode()
        headers["Content-Type"] = "application/json"
    elif remaining:
        query = "&".join(filter(None, [query, urlencode({k: _text(v) for k, v in remaining.items()})]))
    try:
        response = request(
            tool.method or "GET",
            urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")),
            headers,
            body,
            timeout,
            allowed_hosts=list(tool.allowed_hosts),
            allow_private=tool.allow_private,
        )
    except RequestFailed as error:
        raise ToolFailure(str(error)) from None
    text = response.body.decode(errors="replace")
    if response.status >= 400:
        raise ToolFailure(f"the server answered {response.status} {response.reason}: {text[:500]}")
    try:
        return json.loads(text)
    except ValueError:
        return {"status": response.status, "text": text[:4000]}


def _environment(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise ToolFailure(f"the environment variable {name} (used in a header) is not set")
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
