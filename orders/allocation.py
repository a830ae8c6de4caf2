"""How a debit is shared among a user's lots, and how it is given back: arithmetic on plain
numbers, with no database (the lots' rows and their locks are orders/models.py's).

A lot is one credit of stored value: a paid recharge (its paid money and the bonus it came
with) or an operator's credit (bonus only). The rules (docs/stored-value.md):

- A spend takes from the oldest lot first and, inside a lot, paid and bonus money in the
  lot's own proportion (paid ÷ (paid + bonus)): what was consumed is charged at the
  discounted rate, as the courts count it under 法释〔2025〕4号.
- A reversal gives back to the lots its spend took from, the newest of them first, paid and
  bonus in the proportion they were taken.
- A refund of part of a lot's paid money removes the same share of its bonus (so that what
  stays keeps the lot's proportion).

The data migration that opened lots for the ledger kept before them uses these functions too:
they must keep giving the same answers for the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LotState:
    """A lot as the rules see it: what it was credited with and what is left of it."""

    id: int
    paid: int
    bonus: int
    paid_left: int
    bonus_left: int

    @property
    def left(self) -> int:
        return self.paid_left + self.bonus_left


# (lot id, paid fen, bonus fen): one lot's part of a ledger row, signed as the row is.
Share = tuple[int, int, int]


def _share(numerator: int, denominator: int) -> int:
    """numerator ÷ denominator rounded half up (both ≥ 0, denominator > 0)."""
    return (2 * numerator + denominator) // (2 * denominator)


def take_from(lot: LotState, amount: int) -> tuple[int, int]:
    """Take `amount` fen (0 < amount ≤ what is left) from one lot: (paid, bonus) taken.

    What stays in the lot keeps the lot's proportion as closely as whole fen allow, so
    rounding never drifts over many small spends; bonus that expired or was removed is
    simply not there to take.
    """
    if not 0 < amount <= lot.left:
        raise ValueError(f"cannot take {amount} from a lot with {lot.left} left")
    after = lot.left - amount
    credited = lot.paid + lot.bonus
    ideal = _share(after * lot.paid, credited) if credited else 0
    paid_after = min(max(ideal, after - lot.bonus_left, 0), lot.paid_left, after)
    paid = lot.paid_left - paid_after
    return paid, amount - paid


def consume(lots: list[LotState], amount: int) -> list[Share]:
    """Take `amount` fen from `lots` (oldest first, as given): the shares, negative. The lots'
    states are updated. Raises ValueError when they hold less than `amount`."""
    shares: list[Share] = []
    for lot in lots:
        if amount == 0:
            break
        if lot.left == 0:
            continue
        paid, bonus = take_from(lot, min(amount, lot.left))
        lot.paid_left -= paid
        lot.bonus_left -= bonus
        amount -= paid + bonus
        shares.append((lot.id, -paid, -bonus))
    if amount:
        raise ValueError(f"the lots lack {amount} fen")
    return shares


def give_back(taken: list[Share], returned: list[Share], amount: int) -> list[Share]:
    """Give back `amount` fen of a debit that took `taken` (its shares, negative, oldest lot
    first) and has had `returned` given back already (positive): the shares, positive, the
    newest lot first. Raises ValueError for more than is left to give back."""
    room: dict[int, list[int]] = {}
    for lot_id, paid, bonus in taken:
        room.setdefault(lot_id, [0, 0])
        room[lot_id][0] -= paid
        room[lot_id][1] -= bonus
    for lot_id, paid, bonus in returned:
        room[lot_id][0] -= paid
        room[lot_id][1] -= bonus
    shares: list[Share] = []
    for lot_id in reversed(list(room)):
        if amount == 0:
            break
        paid_room, bonus_room = room[lot_id]
        given = min(amount, paid_room + bonus_room)
        if given == 0:
            continue
        paid = min(max(_share(given * paid_room, paid_room + bonus_room), given - bonus_room, 0), paid_room, given)
        shares.append((lot_id, paid, given - paid))
        amount -= given
    if amount:
        raise ValueError(f"{amount} fen more than was taken")
    return shares


def bonus_share(lot: LotState, paid: int) -> int:
    """The bonus a refund of `paid` fen of the lot's paid money removes with it: all of what is
    left when the refund takes all the paid money left, else what keeps the rest in the lot's
    proportion (what stays is rounded half up, so many small refunds remove what one would)."""
    if paid >= lot.paid_left:
        return lot.bonus_left
    # What stays keeps the lot's own proportion (as a spend leaves it): never more bonus than is left.
    stays = min(lot.bonus_left, _share((lot.paid_left - paid) * lot.bonus, lot.paid)) if lot.paid else lot.bonus_left
    return lot.bonus_left - stays
