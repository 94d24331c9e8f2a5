from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "evaluations"
    verbose_name = "Evaluations"

    def ready(self) -> None:
        from evaluations import suites
        from governance.models import Risk
        from governance.registry import GovernedKind, register

        register(
            GovernedKind(
                name=suites.SUITE_KIND,
                title="suite",
                schema=suites.SCHEMA,
                validators=(suites.validate_suite,),
                review_risk=Risk.MEDIUM,
                locate=suites.locate,
            )
        )
