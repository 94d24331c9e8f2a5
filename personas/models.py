"""Personas and their style guides. A style guide is governed configuration: its spec lives in
``governance`` (kind ``style_guide``); this proxy gives it its own place in the console."""

from typing import ClassVar

from governance.models import GovernedObject, KindManager


class StyleGuide(GovernedObject):
    objects: ClassVar[KindManager] = KindManager("style_guide")

    class Meta:
        proxy = True
        verbose_name = "style guide"
