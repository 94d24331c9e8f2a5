"""What the benchmarks share: the throw-away database, the cast and its releases, figures and report lines.

Import it after ``django.setup()``, as the benchmarks import the project's models.
"""

import contextlib
import math
import os
import platform
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import django
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, connections

from audit.context import Actor
from governance import services as governance
from governance.demo import released
from governance.models import Version
from governance.roles import Role

DEBUG_NOTE = ", DEBUG=True (query logging inflates the figures)"


class BenchError(Exception):
    """The benchmark could not run or produced an invalid result."""


# --- the throw-away database --------------------------------------------------------------------------------------


def unique_suffix() -> str:
    """Eight random hex digits: two people benchmarking on one server never share (and drop) a database."""
    return uuid.uuid4().hex[:8]


def bench_database_name(postgres_name: str, sqlite_file: str) -> str:
    """The throw-away database's name, unique to this run: ``<postgres_name>_<suffix>`` on PostgreSQL,
    ``<sqlite_file stem>-<suffix>.sqlite3`` under ``VAR_DIR`` on SQLite."""
    suffix = unique_suffix()
    if connection.vendor == "sqlite":
        file = Path(sqlite_file)
        return str(settings.VAR_DIR / f"{file.stem}-{suffix}{file.suffix}")
    if connection.vendor == "postgresql":
        return f"{postgres_name}_{suffix}"
    raise BenchError(f"unsupported database vendor {connection.vendor!r}")


def remove_sqlite_leftovers(bench_name: str) -> None:
    """Delete a SQLite database file and its journals, whichever exist."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(bench_name + suffix).unlink()


@contextlib.contextmanager
def throwaway_sink() -> Iterator[None]:
    """External audit checkpoints to a temporary file, in this process and the servers and workers it starts: the
    configured sink belongs to the installation's real trail."""
    configured, inherited = settings.AUDIT_CHECKPOINT_SINK, os.environ.get("AUDIT_CHECKPOINT_SINK")
    with tempfile.TemporaryDirectory(prefix="bench-checkpoints-") as directory:
        settings.AUDIT_CHECKPOINT_SINK = os.environ["AUDIT_CHECKPOINT_SINK"] = f"file:{directory}/checkpoints.jsonl"
        try:
            yield
        finally:
            settings.AUDIT_CHECKPOINT_SINK = configured
            if inherited is None:
                os.environ.pop("AUDIT_CHECKPOINT_SINK", None)
            else:
                os.environ["AUDIT_CHECKPOINT_SINK"] = inherited


@contextlib.contextmanager
def throwaway_database(postgres_name: str, sqlite_file: str) -> Iterator[str]:
    """Create and migrate a throw-away database next to the configured one, as the test runner does, and switch
    the default connection to it, with a throw-away checkpoint sink; yield its name (``postgres_name`` or
    ``sqlite_file`` with a random suffix, see ``bench_database_name``). It is dropped on the way out, even when the
    run fails."""
    with throwaway_sink():
        yield from _throwaway_database(postgres_name, sqlite_file)


def _throwaway_database(postgres_name: str, sqlite_file: str) -> Iterator[str]:
    bench_name = bench_database_name(postgres_name, sqlite_file)
    vendor = connection.vendor
    configured_name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = bench_name
    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
    try:
        connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False, serialize=False)
        if connection.settings_dict["NAME"] != bench_name:
            raise BenchError(f"expected to be on {bench_name!r}, but on {connection.settings_dict['NAME']!r}")
        yield bench_name
    finally:
        connections.close_all()
        # Once created, the connection is switched to it: dropped also when migrating it failed.
        if connection.settings_dict["NAME"] == bench_name:
            connection.creation.destroy_test_db(configured_name, verbosity=0)
        if vendor == "sqlite":
            remove_sqlite_leftovers(bench_name)


def bench_database_url(bench_name: str) -> str:
    """The configured ``DATABASE_URL`` pointed at the throw-away database (for a server or worker process)."""
    if connection.vendor == "sqlite":
        return f"sqlite:///{bench_name}"
    parts = urlsplit(settings.DATABASE_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{bench_name}", parts.query, parts.fragment))


# --- the cast, through the services -------------------------------------------------------------------------------


def make_user(username: str, role: Role | None, password: str | None = None) -> User:
    """A user with ``role`` assigned through the services (none for ``None``); no usable password without one."""
    user = User.objects.create_user(username=username, password=password)
    if role is not None:
        governance.user_role_assign(actor=Actor.system("bench"), user=user, role=role)
    return user


def release(editor: User, approvers: list[User], kind: str, slug: str, name: str, spec: dict[str, Any]) -> Version:
    """Draft, submit, approve and release to ``staging`` and ``production`` (``governance.demo.released``); the
    released version, which must pass its checks."""
    released(editor, approvers, kind, slug, name, spec)
    version = governance.label_resolve(kind=kind, slug=slug, label="production")
    if not version.checks_passed:
        raise BenchError(f"{kind} {slug} v{version.number} fails its checks: {version.checks}")
    return version


# --- figures and the report ---------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(0, math.ceil(share / 100 * len(ordered)) - 1)]


def database_description() -> str:
    """The database server and its version, e.g. ``PostgreSQL 16.4`` or ``SQLite 3.45.1``."""
    if connection.vendor == "postgresql":
        version = connection.cursor().connection.info.server_version  # type: ignore[attr-defined]
        return f"PostgreSQL {version // 10000}.{version % 10000}"
    if connection.vendor == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    return connection.display_name


def print_heading(title: str, database: str, bench_name: str, environment: str = "") -> None:
    """The report's first lines: what, on which database, then the machine and versions (``environment`` is added
    after Django's version), with a warning under ``DEBUG``."""
    print()
    print(f"{title}: {database} ({connection.vendor}), throw-away database {bench_name}")
    print(
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, Django {django.get_version()}{environment}"
        + (DEBUG_NOTE if settings.DEBUG else "")
    )


def print_load(load: tuple[float, float]) -> None:
    """The 1-minute load average at the start and the end of the run."""
    print(
        f"Load average (1 min) at the start {load[0]:.2f}, at the end {load[1]:.2f}: "
        "anything else running on the machine is in these figures"
    )


def target_scope(note: str) -> str:
    """Nothing on PostgreSQL, where the targets apply; elsewhere ``note`` in brackets."""
    return "" if connection.vendor == "postgresql" else f"  ({note})"


def verdict(met: bool, words: tuple[str, str] = ("MET", "NOT MET")) -> str:
    """The first of ``words`` when a target is met, else the second."""
    return words[0] if met else words[1]


def print_total(total: float) -> None:
    """The report's last line."""
    print()
    print(f"Total run time {total:.1f} s")
