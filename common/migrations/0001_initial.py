"""RateLimitWindow moves here from the wxrecharge app; its table (wxrecharge_ratelimitwindow,
made by wxrecharge's first migration) stays as it is: only Django's idea of its owner changes."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("wxrecharge", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="RateLimitWindow",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("key", models.CharField(max_length=200)),
                        ("window_start", models.DateTimeField()),
                        ("hits", models.PositiveIntegerField(default=0)),
                    ],
                    options={
                        "verbose_name": "请求频率",
                        "verbose_name_plural": "请求频率",
                        "db_table": "wxrecharge_ratelimitwindow",
                        "constraints": [
                            models.UniqueConstraint(fields=("key", "window_start"), name="ratelimit_one_row_per_window")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
