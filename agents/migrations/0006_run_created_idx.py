from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0005_demo_orders"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["-created_at", "-id"], name="run_created_idx"),
        ),
    ]
