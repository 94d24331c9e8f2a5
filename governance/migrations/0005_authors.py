from django.conf import settings
from django.db import migrations, models


def backfill(apps, schema_editor):
    """Versions written before authors were kept: their submitter is the one known author. A draft's known
    authors are whoever created it and whoever edited it last."""
    Version = apps.get_model("governance", "Version")
    GovernedObject = apps.get_model("governance", "GovernedObject")
    for version in Version.objects.all():
        version.authors.add(version.author_id)
    for obj in GovernedObject.objects.all():
        known = {obj.created_by_id, obj.draft_updated_by_id} - {None}
        if known:
            obj.draft_authors.add(*known)


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0004_rollback_permission'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='governedobject',
            name='draft_authors',
            field=models.ManyToManyField(blank=True, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='version',
            name='authors',
            field=models.ManyToManyField(blank=True, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
