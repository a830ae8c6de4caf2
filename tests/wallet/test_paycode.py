"""The member pay code (会员码) page and its JSON, as the member and the browser see them: who may
see them, the code and the balance shown, a new code every minute, 支付成功 once a counter has
charged the code shown, nothing about another member's code, nothing cacheable; the barcode
and the QR code read back as the code's digits; and in Chromium, the page renewing its code,
turning into 支付成功 after a charge at the counter, and covering a code that ran out."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

import segno
import time_machine
from django.utils import timezone

from tests.factories import make_user
from tests.wallet.conftest import fund
from wallet.models import Charge, MemberCode
from wxproto.beijing import BEIJING

PAGE, JSON = "/wallet/code/", "/wallet/code.json"
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.47 NetType/WIFI Language/zh_CN"
)


def by_testid(page_html: str, name: str) -> str:
    """The text inside the element with data-testid=`name` (no nested element of its tag)."""
    match = re.search(rf'<(\w+)[^>]*\bdata-testid="{name}"[^>]*>(.*?)</\1>', page_html, re.S)
    assert match, f"no {name} on the page"
    return html.unescape(re.sub(r"<[^>]+>", "", match[2])).strip()


def grouped(code: str) -> str:
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


def code_json(client, shown: str | None = None):
    response = client.get(JSON, {"code": shown} if shown is not None else {})
    assert response.status_code == 200, response.content
    return response.json()


# -- reading the pictures back -----------------------------------------------------------------

# Code 128 as the standard draws it (bars 1, spaces 0, 11 modules a symbol). The symbol table
# comes from python-barcode; everything else here (quiet zones, start, check symbol, stop, code
# set C's digit pairs) is read independently of it, from the rects the page draws.
START_C = "11010011100"
STOP = "1100011101011"


def barcode_modules(svg: str) -> str:
    """The module string an SVG of ours draws: one viewBox unit a module, each black rect a bar."""
    width = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg)[1])
    bars = re.search(r'<g fill="#000">(.*?)</g>', svg, re.S)[1]
    modules = ["0"] * width
    for x, w in re.findall(r'<rect x="(\d+)" y="0" width="(\d+)"', bars):
        for i in range(int(x), int(x) + int(w)):
            assert modules[i] == "0", "bars overlap"
            modules[i] = "1"
    return "".join(modules)


def read_code128(svg: str) -> str:
    """The digits a Code 128 (code set C) barcode SVG carries; fails on a bad quiet zone,
    start, check symbol or stop."""
    from barcode.charsets.code128 import CODES

    modules = barcode_modules(svg)
    assert modules.startswith("0" * 10) and modules.endswith("0" * 10), "Code 128 needs 10 modules of quiet zone"
    core = modules.strip("0")
    assert core.endswith(STOP) and (len(core) - len(STOP)) % 11 == 0, "no stop pattern"
    symbols = [core[i : i + 11] for i in range(0, len(core) - len(STOP), 11)]
    assert symbols[0] == START_C, "not started in code set C"
    values = [CODES.index(symbol) for symbol in symbols]
    *data, check = values[1:]
    assert (values[0] + sum(i * v for i, v in enumerate(data, 1))) % 103 == check, "wrong check symbol"
    return "".join(f"{v:02d}" for v in data)


def qr_matrix(svg: str) -> list[list[int]]:
    """The dark modules of a segno SVG QR (one path of horizontal runs, 1 unit a module), with its border."""
    size = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg)[1])
    path = re.search(r'<path[^>]*\bstroke="#000"[^>]*\bd="([^"]+)"', svg)[1]
    matrix = [[0] * size for _ in range(size)]
    x = y = 0.0
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?:\s+(-?[\d.]+))?", path):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            for i in range(int(x), int(x + float(a))):
                matrix[int(y)][i] = 1
            x += float(a)
    return matrix


def is_qr_of(svg: str, text: str) -> bool:
    """Whether the SVG draws the QR code of exactly `text`, at any error correction level."""
    drawn = qr_matrix(svg)
    for level in "lmqh":
        qr = segno.make_qr(text, error=level, boost_error=False)
        border = (len(drawn) - qr.symbol_size(scale=1, border=0)[0]) // 2
        expected = [list(row) for row in qr.matrix_iter(scale=1, border=border)]
        if [[1 if v else 0 for v in row] for row in expected] == drawn:
            return True
    return False


# -- who may see it ------------------------------------------------------------------------------


def test_signed_out_the_page_sends_to_sign_in_and_the_json_is_a_401_not_a_redirect(client, db):
    page = client.get(PAGE)
    assert page.status_code == 302 and page["Location"] == "/accounts/login/?next=/wallet/code/"
    answer = client.get(JSON, {"code": "881234567890123456"})
    assert answer.status_code == 401 and answer["Content-Type"].startswith("application/json")
    assert answer.json() == {"error": "login_required", "message": "请先登录"}
    assert "no-store" in answer["Cache-Control"]
    assert not MemberCode.objects.exists()


def test_neither_the_page_nor_the_json_may_be_cached(client, member):
    client.force_login(member)
    for response in (client.get(PAGE), client.get(JSON)):
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"], response["Cache-Control"]


# -- the page --------------------------------------------------------------------------------------


def test_the_page_shows_the_balance_and_the_current_code_in_fours_under_its_barcode(client, member):
    client.force_login(member)
    response = client.get(PAGE, HTTP_USER_AGENT=WECHAT_UA)
    page = response.content.decode()
    code = MemberCode.objects.get(user=member)
    assert code.code.startswith("88") and len(code.code) == 18

    assert "<title>会员码</title>" in page and by_testid(page, "paycode-tip") == "向收银员出示此码，每分钟自动更新"
    assert by_testid(page, "balance") == "¥30.00"
    assert by_testid(page, "code-digits") == grouped(code.code)  # e.g. 8812 3456 7890 1234 56
    assert by_testid(page, "code-digits").replace(" ", "") == code.code
    # The digits stand under the barcode, the QR code under them; both pictures are the code.
    assert page.index('data-testid="barcode"') < page.index('data-testid="code-digits"') < page.index('data-testid="qr"')
    barcode = re.search(r'data-testid="barcode">(<svg.*?</svg>)', page, re.S)[1]
    qr = re.search(r'data-testid="qr">(<svg.*?</svg>)', page, re.S)[1]
    assert read_code128(barcode) == code.code
    assert is_qr_of(qr, code.code)
    # 刷新, and the way back to 充值 and on to 余额明细.
    assert re.search(r"<button[^>]*data-action=\"refresh\"[^>]*>刷新</button>", page)
    assert (
        re.search(r'<a [^>]*href="/recharge/"[^>]*data-testid="link-recharge"', page)
        and by_testid(page, "link-recharge") == "充值"
    )
    assert re.search(r'<a [^>]*href="/wallet/statement/"', page) and by_testid(page, "link-statement") == "余额明细"
    # Within the Content-Security-Policy: no inline style or script (the SVGs included).
    assert " style=" not in page and "<style" not in page
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert '<script src="/static/js/paycode.js"></script>' in page


def test_the_page_and_the_json_show_the_same_code_within_the_minute(client, member):
    client.force_login(member)
    page = client.get(PAGE).content.decode()
    body = code_json(client)
    assert by_testid(page, "code-digits") == grouped(body["code"]) == body["digits"]
    assert MemberCode.objects.filter(user=member).count() == 1


def test_the_balance_shown_is_read_when_the_page_is_asked_for(client, member):
    client.force_login(member)
    fund(member, 500)  # after sign-in: the session's user object knew 3000
    assert by_testid(client.get(PAGE).content.decode(), "balance") == "¥35.00"
    assert code_json(client)["balance"] == 3500


# -- the JSON ----------------------------------------------------------------------------------------


def test_the_json_has_the_code_and_its_pictures_and_the_balance(client, member):
    client.force_login(member)
    with time_machine.travel(datetime(2026, 11, 24, 10, 0, tzinfo=BEIJING), tick=False):
        body = code_json(client)
    assert body["balance"] == 3000 and body["balance_yuan"] == "30.00"
    assert re.fullmatch(r"88\d{16}", body["code"]) and body["digits"] == grouped(body["code"])
    assert body["expires_at"] == "2026-11-24T10:01:30+08:00" and body["expires_in"] == 90
    assert read_code128(body["barcode_svg"]) == body["code"]
    assert is_qr_of(body["qr_svg"], body["code"])
    assert " style=" not in body["barcode_svg"] + body["qr_svg"] and "<script" not in body["barcode_svg"] + body["qr_svg"]
    assert "paid" not in body


def test_the_same_code_for_a_minute_then_a_new_one_each_valid_for_90_seconds(client, member):
    client.force_login(member)
    start = datetime(2026, 11, 24, 10, 0, tzinfo=BEIJING)
    with time_machine.travel(start, tick=False) as clock:
        first = code_json(client)
        clock.shift(59)
        assert code_json(client, first["code"])["code"] == first["code"]
        clock.shift(2)  # 61 s after the first was drawn
        second = code_json(client, first["code"])
        now = timezone.now()
    assert second["code"] != first["code"] and "paid" not in second
    for body, drawn in ((first, start), (second, now)):
        expires_at = datetime.fromisoformat(body["expires_at"])
        assert drawn < expires_at <= drawn + timedelta(seconds=90)
    assert read_code128(second["barcode_svg"]) == second["code"]


def test_once_the_counter_charges_the_code_shown_the_json_says_paid(client, member, code, pos):
    client.force_login(member)
    before = code_json(client, code)
    assert "paid" not in before and before["code"] == code and before["balance"] == 3000

    answer = pos.charge(code, 1250, store="一号店", description="拿铁 大杯")
    assert answer.status_code == 201, answer.content
    body = code_json(client, code)
    charge = Charge.objects.get()
    assert body["paid"] == {
        "charge": charge.number,
        "amount": 1250,
        "amount_yuan": "12.50",
        "balance": 1750,
        "balance_yuan": "17.50",
        "store": "一号店",
        "description": "拿铁 大杯",
        "paid_at": timezone.localtime(charge.created_at, BEIJING).isoformat(),
    }
    assert body["balance"] == 1750
    # The used code is never shown again: the answer already brings the next one.
    assert body["code"] != code and read_code128(body["barcode_svg"]) == body["code"]
    # Asked without the code, or with the new one, nothing is paid.
    assert "paid" not in code_json(client) and "paid" not in code_json(client, body["code"])


def test_the_balance_in_paid_is_the_one_after_that_charge(client, member, code, pos):
    client.force_login(member)
    assert pos.charge(code, 1000).status_code == 201
    later = MemberCode.current(member).code
    assert pos.charge(later, 500).status_code == 201
    first = code_json(client, code)["paid"]
    assert (first["amount"], first["balance"], first["store"], first["description"]) == (1000, 2000, "", "")
    assert code_json(client, code)["balance"] == 1500


def test_another_members_code_reveals_nothing(client, member, pos):
    stranger = make_user("stranger")
    fund(stranger, 9900)
    theirs = MemberCode.current(stranger).code
    assert pos.charge(theirs, 4321, store="二号店", description="秘密").status_code == 201

    client.force_login(member)
    body = code_json(client, theirs)
    mine = MemberCode.objects.get(user=member).code
    assert "paid" not in body and body["code"] == mine and body["balance"] == 3000
    text = client.get(JSON, {"code": theirs}).content.decode()
    assert "二号店" not in text and "4321" not in text and "秘密" not in text and theirs not in text
    # Nonsense in ?code= is the same as none.
    for junk in ("", "x" * 500, "88" + "0" * 16, "' OR 1=1 --"):
        assert "paid" not in code_json(client, junk)


def test_a_code_charged_just_after_the_page_moved_on_still_says_paid(client, member, pos):
    client.force_login(member)
    first = MemberCode.current(member).code
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        second = code_json(client)["code"]
        assert second != first
        assert pos.charge(first, 800, store="一号店").status_code == 201  # the old code, still valid
        body = client.get(JSON, {"code": [first, second]}).json()
    assert body["paid"]["amount"] == 800 and body["paid"]["balance"] == 2200
