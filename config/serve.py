"""``make run``'s last step: start the web server, a Celery worker, Celery beat and, on the embedded
default, Redis; print where to go; Ctrl-C stops every process started here.

Run as ``python -m config.serve``. A Redis already answering on the embedded socket is reused.
"""

import os
import sys

from honcho.manager import Manager


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings

    from config import embedded_redis

    port = os.environ.get("PORT", "8000")
    python = sys.executable
    bin_dir = os.path.dirname(python)
    manager = Manager()
    if settings.REDIS_EMBEDDED and not embedded_redis.is_running(settings.REDIS_SOCKET):
        manager.add_process("redis", " ".join(embedded_redis.command(settings.REDIS_SOCKET)))
    manager.add_process(
        "web",
        f"{bin_dir}/gunicorn config.wsgi --bind 127.0.0.1:{port} --workers 2 --threads 4 "
        "--access-logfile - --graceful-timeout 5",
    )
    manager.add_process("worker", f"{bin_dir}/celery -A config worker --loglevel INFO --concurrency 2")
    manager.add_process(
        "beat",
        f"{bin_dir}/celery -A config beat --loglevel INFO --schedule {settings.VAR_DIR / 'celerybeat-schedule'}",
    )
    print(
        f"\n  Steward is starting.\n"
        f"    Console:   http://127.0.0.1:{port}/admin/\n"
        f"    API docs:  http://127.0.0.1:{port}/api/docs/\n"
        f"    Readiness: http://127.0.0.1:{port}/readyz\n"
        f"  Press Ctrl-C to stop every process.\n",
        flush=True,
    )
    manager.loop()
    # Ctrl-C (130) or SIGTERM (143) is how the platform is meant to stop: not a failure.
    return 0 if manager.returncode in (None, 130, 143) else manager.returncode


if __name__ == "__main__":
    sys.exit(main())
