from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("personas", "0003_conversation_handoff"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(fields=["-created_at", "-id"], name="conversation_created_idx"),
        ),
    ]
