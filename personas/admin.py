from django.contrib import admin

from governance.admin import GovernedObjectAdmin
from personas.models import StyleGuide


@admin.register(StyleGuide)
class StyleGuideAdmin(GovernedObjectAdmin):
    kind = "style_guide"
