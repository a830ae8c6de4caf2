"""RateLimitWindow now belongs to the common app (common/migrations/0001_initial.py); the
table stays: nothing happens in the database."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("wxrecharge", "0001_initial"),
        ("common", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="RateLimitWindow")]),
    ]
