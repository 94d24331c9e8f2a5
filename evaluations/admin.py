from django.contrib import admin

from evaluations.models import Suite
from evaluations.suites import SUITE_KIND
from governance.admin import GovernedObjectAdmin


@admin.register(Suite)
class SuiteAdmin(GovernedObjectAdmin):
    kind = SUITE_KIND
