from django.db import migrations, models
from django.db.models import F


def accepted_when_requested(apps, schema_editor):
    """Refunds WeChat took before this field existed: taken when they were requested (the
    site sends a refund as soon as it is made)."""
    Refund = apps.get_model("orders", "Refund")
    Refund.objects.filter(accepted=True, accepted_at__isnull=True).update(accepted_at=F("created_at"))


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0005_prepay_id_label'),
    ]

    operations = [
        migrations.AddField(
            model_name='refund',
            name='accepted_at',
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name='微信受理时间'),
        ),
        migrations.RunPython(accepted_when_requested, migrations.RunPython.noop),
    ]
