"""The two release labels every installation starts with; Admins can add more."""

from typing import Any

from django.db import migrations

LABELS = {"staging": "Where new versions are tried first", "production": "What end users and live runs get"}


def create_labels(apps: Any, schema_editor: Any) -> None:
    label_model = apps.get_model("governance", "Label")
    for name, description in LABELS.items():
        label_model.objects.get_or_create(name=name, defaults={"description": description})


class Migration(migrations.Migration):
    dependencies = [("governance", "0002_governed_configuration")]

    operations = [migrations.RunPython(create_labels, migrations.RunPython.noop)]
