from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo: the reference text's agents and personas, their tools and the small tables those work on, a cast of
    users and guardrail policies, loaded by ``manage.py bootstrap``. Installed while ``STEWARD_DEMO`` is on (the
    default, for ``make run`` and the tests); production turns it off and has none of it.

    It sits on top of the other apps, like webhooks: it listens to bootstrap's signal, and no app imports it (the
    banner of ``make run`` aside, while it is installed)."""

    name = "demo"
    verbose_name = "Demo"

    def ready(self) -> None:
        from demo import receivers

        receivers.connect()
