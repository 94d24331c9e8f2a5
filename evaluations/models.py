"""Suites are governed configuration (``governance.models.GovernedObject`` of kind ``suite``): a proxy for the
console, as the other kinds have."""

from typing import ClassVar

from governance.models import GovernedObject, KindManager


class Suite(GovernedObject):
    """Scenario suites, for the console: governed objects of kind ``suite``."""

    objects: ClassVar[KindManager] = KindManager("suite")

    class Meta:
        proxy = True
        verbose_name = "suite"
