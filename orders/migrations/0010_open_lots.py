"""Open lots for the balances kept before lots existed, by replaying each user's ledger in
order with the rules of orders/allocation.py: each recharge a lot of paid money; a spend or
an operator's debit taken from the oldest lots; a refund from its own order's lot first; a
reversal or a failed refund given back where its row took from; an operator's credit a lot
of bonus. Afterwards each user's lots hold exactly their balance."""

from dataclasses import replace

from django.db import migrations

from orders.allocation import LotState, consume, give_back


def open_lots(apps, schema_editor):
    LedgerEntry = apps.get_model("orders", "LedgerEntry")
    Lot = apps.get_model("orders", "Lot")
    LotMove = apps.get_model("orders", "LotMove")
    Reversal = apps.get_model("wallet", "Reversal")
    reversed_charge = dict(Reversal.objects.values_list("entry_id", "charge__entry_id"))
    reversals_of = {}
    for entry_id, charge_entry in Reversal.objects.order_by("pk").values_list("entry_id", "charge__entry_id"):
        reversals_of.setdefault(charge_entry, []).append(entry_id)

    user_ids = LedgerEntry.objects.order_by().values_list("user_id", flat=True).distinct()
    for user_id in list(user_ids):
        lots: dict[int, LotState] = {}
        of_order: dict[int, int] = {}
        shares_of: dict[int, list] = {}
        moves = []
        # In the order the rows were applied: `pk`, taken under the user's lock (`created_at` is
        # read before it, so two rows may carry their times the other way round).
        rows = LedgerEntry.objects.filter(user_id=user_id).order_by("pk")
        for pk, kind, amount, order_id, refund_id, created_at in rows.values_list(
            "pk", "kind", "amount", "order_id", "refund_id", "created_at"
        ):
            if kind == "recharge" or (amount > 0 and kind == "adjustment"):
                paid = amount if kind == "recharge" else 0
                lot = Lot.objects.create(
                    user_id=user_id,
                    order_id=order_id if kind == "recharge" else None,
                    paid=paid,
                    bonus=amount - paid,
                    paid_left=0,
                    bonus_left=0,
                    created_at=created_at,
                )
                lots[lot.pk] = LotState(lot.pk, paid, amount - paid, 0, 0)
                if kind == "recharge":
                    of_order[order_id] = lot.pk
                shares = [(lot.pk, paid, amount - paid)]
            elif kind == "refund_return":
                taken = LedgerEntry.objects.filter(refund_id=refund_id, kind="refund").values_list("pk", flat=True).first()
                shares = [(lot, -paid, -bonus) for lot, paid, bonus in shares_of[taken]]
            elif kind == "spend_reversal":
                charge_entry = reversed_charge[pk]
                earlier = [e for e in reversals_of[charge_entry] if e in shares_of]
                shares = give_back(shares_of[charge_entry], [s for e in earlier for s in shares_of[e]], amount)
            else:
                # A debit: a refund from its own order's lot first (paid money: there was no
                # bonus before lots), the rest (and any other debit) from the oldest lots.
                copies = [replace(lot) for lot in sorted(lots.values(), key=lambda lot: lot.id)]
                shares, wanted = [], -amount
                if kind == "refund" and order_id in of_order:
                    own = next(lot for lot in copies if lot.id == of_order[order_id])
                    first = min(wanted, own.paid_left)
                    if first:
                        own.paid_left -= first
                        shares.append((own.id, -first, 0))
                        wanted -= first
                if wanted:
                    shares += consume(copies, wanted)
            for lot_id, paid, bonus in shares:
                lots[lot_id].paid_left += paid
                lots[lot_id].bonus_left += bonus
                moves.append(LotMove(entry_id=pk, lot_id=lot_id, paid=paid, bonus=bonus))
            shares_of[pk] = shares
        LotMove.objects.bulk_create(moves, batch_size=1000)
        for lot in lots.values():
            Lot.objects.filter(pk=lot.id).update(paid_left=lot.paid_left, bonus_left=lot.bonus_left)


def close_lots(apps, schema_editor):
    apps.get_model("orders", "LotMove").objects.all().delete()
    apps.get_model("orders", "Lot").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0009_lots_and_offers"),
        ("wallet", "0001_initial"),
    ]

    operations = [migrations.RunPython(open_lots, close_lots, elidable=False)]
