"""Create the six role groups. Their permissions are synced after every migrate (``roles_sync``)."""

from typing import Any

from django.db import migrations

ROLES = ["Viewer", "Auditor", "Editor", "Approver", "Operator", "Admin"]


def create_roles(apps: Any, schema_editor: Any) -> None:
    group_model = apps.get_model("auth", "Group")
    for name in ROLES:
        group_model.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
