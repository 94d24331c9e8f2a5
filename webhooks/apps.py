from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Webhooks: API clients' endpoints, told about runs, approvals and conversations as they happen.

    It sits on top of agents, governance and personas, like the console: it listens to their signals, and no other
    app imports it.
    """

    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from webhooks import receivers

        receivers.connect()
