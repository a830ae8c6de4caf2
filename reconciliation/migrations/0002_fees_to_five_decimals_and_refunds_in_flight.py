"""WeChat's bills write fees to five decimals of a yuan: fees are kept in thousandths of a
fen (millifen) instead of fen, exactly; and a day keeps the refunds its bill showed not
finished when it was cut."""

from django.db import migrations, models
from django.db.models import F

MILLIFEN_PER_FEN = 1000


def fen_to_millifen(apps, schema_editor):
    apps.get_model("reconciliation", "BillRow").objects.update(fee_millifen=F("fee_millifen") * MILLIFEN_PER_FEN)
    apps.get_model("reconciliation", "BillDay").objects.filter(wechat_fee_millifen__isnull=False).update(
        wechat_fee_millifen=F("wechat_fee_millifen") * MILLIFEN_PER_FEN)


def millifen_to_fen(apps, schema_editor):
    apps.get_model("reconciliation", "BillRow").objects.update(fee_millifen=F("fee_millifen") / MILLIFEN_PER_FEN)
    apps.get_model("reconciliation", "BillDay").objects.filter(wechat_fee_millifen__isnull=False).update(
        wechat_fee_millifen=F("wechat_fee_millifen") / MILLIFEN_PER_FEN)


class Migration(migrations.Migration):

    dependencies = [
        ("reconciliation", "0001_initial"),
    ]

    operations = [
        migrations.RenameField(model_name="billrow", old_name="fee", new_name="fee_millifen"),
        migrations.AlterField(model_name="billrow", name="fee_millifen",
                              field=models.BigIntegerField(verbose_name="手续费（0.001 分）")),
        migrations.RenameField(model_name="billday", old_name="wechat_fee", new_name="wechat_fee_millifen"),
        migrations.AlterField(model_name="billday", name="wechat_fee_millifen",
                              field=models.BigIntegerField(blank=True, null=True, verbose_name="微信：手续费总金额（0.001 分）")),
        migrations.AddField(model_name="billday", name="wechat_in_flight_count",
                            field=models.PositiveIntegerField(blank=True, null=True, verbose_name="微信：出账时未完成的退款笔数")),
        migrations.AddField(model_name="billday", name="wechat_in_flight",
                            field=models.BigIntegerField(blank=True, null=True, verbose_name="微信：出账时未完成的退款金额（分）")),
        migrations.RunPython(fen_to_millifen, millifen_to_fen),
    ]
