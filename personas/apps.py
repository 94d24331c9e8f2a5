from django.apps import AppConfig


class PersonasConfig(AppConfig):
    name = "personas"
    verbose_name = "Personas"

    def ready(self) -> None:
        from governance.models import Risk
        from governance.registry import GovernedKind, register
        from personas import styleguide

        register(
            GovernedKind(
                name="style_guide",
                title="style guide",
                schema=styleguide.STYLE_GUIDE_SCHEMA,
                checks=(styleguide.check_examples,),
                review_risk=Risk.MEDIUM,
            )
        )
