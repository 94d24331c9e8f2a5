from django.apps import AppConfig


class PersonasConfig(AppConfig):
    name = "personas"
    verbose_name = "Personas"

    def ready(self) -> None:
        from governance.models import Risk
        from governance.registry import GovernedKind, register
        from personas import flows, services, styleguide

        register(
            GovernedKind(
                name="style_guide",
                title="style guide",
                schema=styleguide.STYLE_GUIDE_SCHEMA,
                checks=(styleguide.check_examples,),
                review_risk=Risk.MEDIUM,
            )
        )
        register(
            GovernedKind(
                name=services.PERSONA_KIND,
                title="persona",
                schema=flows.SCHEMA,
                validators=(flows.validate_persona, services.validate_style_guide_reference),
                checks=(services.check_persona_style,),
                review_risk=Risk.MEDIUM,
                locate=flows.locate,
            )
        )
