from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The console's dashboard (the admin index) and ``GET /api/metrics/``.

    It reads across governance, personas, agents and audit, which must not import one another that way, so it
    sits on top of them, like ``config``. It has no models.
    """

    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from django.contrib import admin

        # The admin's own index.html is found first (django.contrib.admin precedes this app), so the dashboard
        # is a template of its own that extends it.
        admin.site.index_template = "admin/console/index.html"
