"""Checkpoints outside the database: written to the sinks ``AUDIT_CHECKPOINT_SINK`` names, and read back.

Whoever can rewrite the database can delete its checkpoints; they cannot reach these. A sink is one of

- ``file:PATH`` (the default, ``file:var/audit-checkpoints.jsonl``): JSON Lines, one signed checkpoint a line,
  each appended with a single ``O_APPEND`` write and never rewritten;
- ``syslog:`` (the local syslog socket, ``/dev/log``), ``syslog:/path/of/socket`` or ``syslog://host:port``
  (UDP): one message a checkpoint, tagged ``steward-audit-checkpoint:``, facility ``authpriv``.

Several sinks are separated by commas. Verification reads a file of checkpoints back: a file sink as it is,
or the syslog messages collected into a file (anything before the JSON object on a line is ignored).
"""

import datetime as dt
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audit.integrity import CheckpointRecord

logger = logging.getLogger("steward.audit")

SYSLOG_TAG = "steward-audit-checkpoint:"
SYSLOG_PRIORITY = 10 * 8 + 6  # facility authpriv, severity info (RFC 5424)


class Sink(Protocol):
    def write(self, line: str) -> None: ...


@dataclass(frozen=True)
class FileSink:
    path: Path

    def write(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, f"{line}\n".encode())
        finally:
            os.close(descriptor)


@dataclass(frozen=True)
class SyslogSink:
    address: str | tuple[str, int]

    def write(self, line: str) -> None:
        message = f"<{SYSLOG_PRIORITY}>{SYSLOG_TAG} {line}".encode()
        family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as connection:
            connection.sendto(message, self.address)


def _syslog_address(rest: str) -> str | tuple[str, int]:
    if not rest:
        return "/dev/log"
    if rest.startswith("//"):
        host, _, port = rest[2:].rpartition(":")
        if not host or not port.isdigit():
            raise ImproperlyConfigured(f"AUDIT_CHECKPOINT_SINK: syslog:{rest} is not syslog://host:port")
        return host, int(port)
    return rest


def parse_sink(spec: str) -> Sink:
    kind, _, rest = spec.strip().partition(":")
    if kind == "file" and rest:
        return FileSink(Path(rest))
    if kind == "syslog":
        return SyslogSink(_syslog_address(rest))
    raise ImproperlyConfigured(
        f"AUDIT_CHECKPOINT_SINK: {spec!r} is not a sink (use file:PATH, syslog:, syslog:/socket or syslog://host:port)"
    )


def configured_sinks() -> list[Sink]:
    return [parse_sink(spec) for spec in settings.AUDIT_CHECKPOINT_SINK.split(",") if spec.strip()]


def configured_file() -> Path | None:
    """The first file sink configured: what verification reads unless it is given another file."""
    return next((sink.path for sink in configured_sinks() if isinstance(sink, FileSink)), None)


def publish(line: str) -> None:
    """Write one checkpoint line to every configured sink. Runs after the commit that stored the checkpoint:
    a sink that fails is logged, and the checkpoint stays in the database."""
    for sink in configured_sinks():
        try:
            sink.write(line)
        except OSError:
            logger.exception("audit checkpoint not written to %s", sink)


@dataclass
class ExternalCheckpoints:
    """The checkpoints read back from a file, and the lines that are not checkpoints."""

    path: Path
    records: list[CheckpointRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    exists: bool = True


def _record(path: Path, number: int, line: str) -> CheckpointRecord:
    data = json.loads(line[line.index("{") :])
    return CheckpointRecord(
        label=f"external checkpoint at line {number} of {path}",
        sequence=int(data["sequence"]),
        hash=str(data["hash"]),
        created_at=dt.datetime.fromisoformat(data["created_at"]),
        signature=str(data["signature"]),
    )


def read_checkpoints(path: Path) -> ExternalCheckpoints:
    """Every checkpoint in ``path``, in file order. A missing file holds none."""
    found = ExternalCheckpoints(path=path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        found.exists = False
        return found
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.records.append(_record(path, number, line))
        except (ValueError, KeyError, TypeError):
            found.problems.append(f"line {number} of {path} is not a signed checkpoint: altered or damaged")
    return found
