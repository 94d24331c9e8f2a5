"""Signal receivers of the demo, connected in ``DemoConfig.ready()``: ``manage.py bootstrap`` loads the demo."""

from typing import Any

from django.conf import settings

from audit.context import Actor
from demo import agents as demo_agents
from demo import cast
from demo import personas as demo_personas
from demo import policies as demo_policies
from governance.signals import bootstrapped


def demo_load(sender: Any, actor: Actor, **kwargs: Any) -> str:
    """The demo cast, then the demo agents, personas (which hand off to the agents) and guardrail policies, drafted
    by the demo editor and approved by the demo approvers; what is there already is left alone."""
    editor, approvers = cast.load(actor=actor)
    demo_agents.load(editor=editor, approvers=approvers)
    demo_personas.load(editor=editor, approvers=approvers)
    demo_policies.load(editor=editor, approvers=approvers)
    return (
        f"Demo ready: the users {', '.join(cast.DEMO_USERS)}, one role each (their password is in "
        f"{settings.VAR_DIR / 'demo-password'}), and the demo agents, personas and guardrail policies, released."
    )


def connect() -> None:
    bootstrapped.connect(demo_load, dispatch_uid="demo.load")
