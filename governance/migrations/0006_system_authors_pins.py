"""Versions the system submits (tools synced from code) have no author, only an author label; versions keep the
versions of other objects they are approved with (an agent version's tools); slugs fit tool names."""

from typing import Any

from django.conf import settings
from django.db import migrations, models


def label_authors(apps: Any, schema_editor: Any) -> None:
    Version = apps.get_model("governance", "Version")
    for version in Version.objects.select_related("author").only("author__username"):
        Version.objects.filter(pk=version.pk).update(author_label=version.author.username)


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0005_authors"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="governedobject",
            name="slug",
            field=models.SlugField(max_length=100),
        ),
        migrations.AlterField(
            model_name="version",
            name="author",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="version",
            name="author_label",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="version",
            name="pins",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.RunPython(label_authors, migrations.RunPython.noop),
    ]
