"""The mini program's fields are named for it in code (miniprogram_openid,
miniprogram_session_key); their columns keep their names (mp_openid, mp_session_key):
nothing happens in the database."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_user_unionid"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RenameField(model_name="user", old_name="mp_openid", new_name="miniprogram_openid"),
                migrations.AlterField(
                    model_name="user",
                    name="miniprogram_openid",
                    field=models.CharField(
                        blank=True,
                        db_column="mp_openid",
                        editable=False,
                        max_length=64,
                        null=True,
                        unique=True,
                        verbose_name="小程序 openid",
                    ),
                ),
                migrations.RenameField(model_name="user", old_name="mp_session_key", new_name="miniprogram_session_key"),
                migrations.AlterField(
                    model_name="user",
                    name="miniprogram_session_key",
                    field=models.CharField(blank=True, db_column="mp_session_key", editable=False, max_length=64),
                ),
            ],
            database_operations=[],
        ),
    ]
