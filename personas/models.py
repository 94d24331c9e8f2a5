"""Personas and their style guides. A style guide is governed configuration: its spec lives in
``governance`` (kind ``style_guide``); this proxy gives it its own place in the console."""

from typing import ClassVar

from django.db import models

from governance.models import GovernedObject


class StyleGuideManager(models.Manager["StyleGuide"]):
    def get_queryset(self) -> models.QuerySet["StyleGuide"]:
        return super().get_queryset().filter(kind="style_guide")


class StyleGuide(GovernedObject):
    objects: ClassVar[StyleGuideManager] = StyleGuideManager()

    class Meta:
        proxy = True
        verbose_name = "style guide"
