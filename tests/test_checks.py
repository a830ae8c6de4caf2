from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from wxrecharge.checks import check_production_configuration, check_renamed_settings, check_sandbox_variable

PRODUCTION = {
    "DEBUG": False,
    "SECRET_KEY_FROM_ENV": True,
    "WECHAT_SANDBOX": False,
    "WECHAT_PAY_API": "v2",
    "WECHAT_APPID": "wx0123456789abcdef",
    "WECHAT_APP_SECRET": "s" * 32,
    "WECHAT_MCH_ID": "1230000109",
    "WECHAT_API_KEY": "k" * 32,
    "WECHAT_SIGN_TYPE": "MD5",
    "SITE_URL": "https://pay.example.com",
    "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": False,
    # Any readable files: the check only asks that refunds have a certificate and key to send.
    "WECHAT_MCH_CERT": __file__,
    "WECHAT_MCH_KEY": __file__,
}
APIV3_KEY = "Av3kEy0123456789abcdefghijklmnop"  # 32 characters, looked for in every message
CERT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"


@pytest.fixture(autouse=True)
def reused_connections(monkeypatch):
    """Production reuses database connections (tests/settings.py turns that off for the suite)."""
    from django.conf import settings

    monkeypatch.setitem(settings.DATABASES["default"], "CONN_MAX_AGE", 600)


def _pem_private(key, encryption=None) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption or serialization.NoEncryption()
    )


def _pem_public(key) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Throwaway files of the kinds a merchant is handed (and of the kinds put in their place by mistake)."""
    folder = tmp_path_factory.mktemp("keys")
    merchant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wechat = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elliptic = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "1230000109")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(merchant.public_key())
        .serial_number(int(CERT_SERIAL, 16))
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(merchant, hashes.SHA256())
    )
    files = {
        "merchant_key": _pem_private(merchant),
        "merchant_key_pkcs1": merchant.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ),
        "encrypted_key": _pem_private(merchant, serialization.BestAvailableEncryption(b"password")),
        "ec_key": _pem_private(elliptic),
        "ec_public_key": _pem_public(elliptic.public_key()),
        "certificate": certificate.public_bytes(serialization.Encoding.PEM),
        "pub_key": _pem_public(wechat.public_key()),
        "not_pem": b"this is not a key\n",
    }
    for stem, data in files.items():
        (folder / f"{stem}.pem").write_bytes(data)
    return SimpleNamespace(
        folder=folder, **{stem: str(folder / f"{stem}.pem") for stem in files}, merchant_key_text=files["merchant_key"].decode()
    )


@pytest.fixture
def v3(keys):
    """A complete v3 production configuration: no v2 key, no refund certificate."""
    return {
        "WECHAT_PAY_API": "v3",
        "WECHAT_API_KEY": "",
        "WECHAT_MCH_CERT": None,
        "WECHAT_MCH_KEY": None,
        "WECHAT_MCH_PRIVATE_KEY": keys.merchant_key,
        "WECHAT_MCH_CERT_SERIAL": CERT_SERIAL,
        "WECHAT_APIV3_KEY": APIV3_KEY,
        "WECHAT_PAY_PUBLIC_KEY": keys.pub_key,
        "WECHAT_PAY_PUBLIC_KEY_ID": "PUB_KEY_ID_0112345678901234567890123456789012",
    }


def ids(settings, **overrides):
    for name, value in {**PRODUCTION, **overrides}.items():
        setattr(settings, name, value)
    return {message.id: message for message in check_production_configuration()}


def test_a_complete_production_configuration_passes(settings):
    assert ids(settings) == {}


def test_it_refuses_production_without_a_secret_key(settings):
    found = ids(settings, SECRET_KEY_FROM_ENV=False)
    assert set(found) == {"wxrecharge.E001"}
    assert found["wxrecharge.E001"].is_serious()
    assert "DJANGO_SECRET_KEY" in found["wxrecharge.E001"].hint


def test_it_refuses_the_sandbox_with_debug_off(settings):
    found = ids(settings, WECHAT_SANDBOX=True)
    assert set(found) == {"wxrecharge.E002"}
    assert "WECHAT_SANDBOX" in found["wxrecharge.E002"].hint


@pytest.mark.parametrize("missing", ["WECHAT_APPID", "WECHAT_APP_SECRET", "WECHAT_MCH_ID", "WECHAT_API_KEY"])
def test_it_refuses_missing_wechat_credentials_and_names_them(settings, missing):
    found = ids(settings, **{missing: ""})
    assert set(found) == {"wxrecharge.E003"}
    assert missing in found["wxrecharge.E003"].msg
    assert missing in found["wxrecharge.E003"].hint


@pytest.mark.parametrize(
    "overrides",
    [{"SECRET_KEY_FROM_ENV": False}, {"WECHAT_SANDBOX": True}, {"WECHAT_API_KEY": ""}, {"WECHAT_PAY_API": ""}],
    ids=["E001", "E002", "E003", "E005"],
)
def test_the_errors_a_developer_meets_locally_name_the_debug_switch(settings, overrides):
    (found,) = ids(settings, **overrides).values()
    assert found.hint.endswith("For local development, run with DJANGO_DEBUG=1 (as `make run` does).")


def test_it_refuses_an_unknown_sign_type(settings):
    found = ids(settings, WECHAT_SIGN_TYPE="SHA1")
    assert set(found) == {"wxrecharge.E004"}


def test_it_warns_about_a_site_url_that_is_not_https(settings):
    found = ids(settings, SITE_URL="http://pay.example.com")
    assert set(found) == {"wxrecharge.W001"}
    assert not found["wxrecharge.W001"].is_serious()
    assert "SITE_URL" in found["wxrecharge.W001"].hint


@pytest.mark.parametrize("name", ["WECHAT_MCH_CERT", "WECHAT_MCH_KEY"])
@pytest.mark.parametrize("value", [None, "/nonexistent/apiclient.pem"])
def test_it_warns_that_refunds_need_a_readable_merchant_certificate_and_key(settings, name, value):
    found = ids(settings, **{name: value})
    assert set(found) == {"wxrecharge.W002"}
    assert name in found["wxrecharge.W002"].msg and not found["wxrecharge.W002"].is_serious()


def test_debug_mode_is_not_held_to_production_rules(settings):
    assert ids(settings, DEBUG=True, SECRET_KEY_FROM_ENV=False, WECHAT_SANDBOX=True, SITE_URL="http://x") == {}


# --- choosing the WeChat Pay API ---------------------------------------------------------


@pytest.mark.parametrize(("value", "said"), [("", "is not set"), ("v4", "'v4', not v2 or v3"), ("V3", "'V3', not v2 or v3")])
def test_it_refuses_production_without_a_known_wechat_pay_api(settings, value, said):
    found = ids(settings, WECHAT_PAY_API=value)
    assert set(found) == {"wxrecharge.E005"}
    assert found["wxrecharge.E005"].is_serious()
    assert said in found["wxrecharge.E005"].msg
    hint = found["wxrecharge.E005"].hint
    assert "WECHAT_PAY_API" in hint and "v2" in hint and "v3" in hint and "new merchants get v3" in hint


def test_an_unknown_api_asks_only_for_the_credentials_both_apis_need(settings):
    found = ids(settings, WECHAT_PAY_API="", WECHAT_API_KEY="", WECHAT_APPID="", WECHAT_MCH_CERT=None)
    assert set(found) == {"wxrecharge.E003", "wxrecharge.E005"}
    assert "WECHAT_APPID" in found["wxrecharge.E003"].msg and "WECHAT_API_KEY" not in found["wxrecharge.E003"].msg


# --- API v3 credentials -----------------------------------------------------------------


def test_a_complete_v3_configuration_passes(settings, v3):
    assert ids(settings, **v3) == {}


def test_v3_takes_a_traditional_pkcs1_private_key_and_a_lower_case_serial(settings, v3, keys):
    assert (
        ids(settings, **{**v3, "WECHAT_MCH_PRIVATE_KEY": keys.merchant_key_pkcs1, "WECHAT_MCH_CERT_SERIAL": CERT_SERIAL.lower()})
        == {}
    )


def test_v3_keeps_a_v2_key_and_certificate_without_complaint(settings, v3):
    assert ids(settings, **{**v3, "WECHAT_API_KEY": "k" * 32, "WECHAT_MCH_CERT": __file__}) == {}


def test_v3_checks_are_skipped_when_the_sandbox_is_on_since_that_alone_is_refused(settings):
    assert set(
        ids(
            settings,
            WECHAT_SANDBOX=True,
            WECHAT_PAY_API="v3",
            WECHAT_MCH_PRIVATE_KEY="",
            WECHAT_APIV3_KEY="",
            WECHAT_PAY_PUBLIC_KEY="",
            WECHAT_PAY_PUBLIC_KEY_ID="",
        )
    ) == {"wxrecharge.E002"}


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("", "WECHAT_MCH_PRIVATE_KEY is not set"),
        (None, "WECHAT_MCH_PRIVATE_KEY is not set"),
        ("/nonexistent/apiclient_key.pem", "WECHAT_MCH_PRIVATE_KEY cannot be read (No such file or directory)"),
        ("{folder}", "WECHAT_MCH_PRIVATE_KEY cannot be read (Is a directory)"),
        ("{not_pem}", "WECHAT_MCH_PRIVATE_KEY is not a PEM RSA private key (no PEM block in the file)"),
        ("{certificate}", "WECHAT_MCH_PRIVATE_KEY is not a PEM RSA private key (it is a certificate)"),
        ("{pub_key}", "WECHAT_MCH_PRIVATE_KEY is not a PEM RSA private key"),
        ("{ec_key}", "WECHAT_MCH_PRIVATE_KEY is not a PEM RSA private key (it is another kind of key)"),
        ("{encrypted_key}", "WECHAT_MCH_PRIVATE_KEY is an encrypted private key"),
    ],
    ids=["empty", "none", "missing", "directory", "not-pem", "certificate", "public-key", "ec-key", "encrypted"],
)
def test_v3_refuses_a_merchant_private_key_that_cannot_sign_and_says_why(settings, v3, keys, value, said):
    found = ids(settings, **{**v3, "WECHAT_MCH_PRIVATE_KEY": value and value.format(**vars(keys))})
    assert set(found) == {"wxrecharge.E006"}
    assert found["wxrecharge.E006"].is_serious()
    assert said in found["wxrecharge.E006"].msg
    assert "apiclient_key.pem" in found["wxrecharge.E006"].hint


def test_a_private_key_pasted_instead_of_its_path_is_named_but_never_quoted(settings, v3, keys):
    found = ids(settings, **{**v3, "WECHAT_MCH_PRIVATE_KEY": keys.merchant_key_text})
    assert set(found) == {"wxrecharge.E006"}
    assert "holds a PEM key itself, not the path" in found["wxrecharge.E006"].msg
    body = keys.merchant_key_text.splitlines()[1]
    assert body not in found["wxrecharge.E006"].msg and body not in found["wxrecharge.E006"].hint


@pytest.mark.parametrize("value", ["", "serial=" + CERT_SERIAL, "G" * 40, "A" * 65, CERT_SERIAL + " "])
def test_v3_refuses_a_certificate_serial_that_is_not_hexadecimal(settings, v3, value):
    found = ids(settings, **{**v3, "WECHAT_MCH_CERT_SERIAL": value})
    assert set(found) == {"wxrecharge.E007"}
    assert "WECHAT_MCH_CERT_SERIAL" in found["wxrecharge.E007"].msg
    assert "openssl x509 -in apiclient_cert.pem -noout -serial" in found["wxrecharge.E007"].hint


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("", "WECHAT_APIV3_KEY is not set"),
        (APIV3_KEY[:31], "WECHAT_APIV3_KEY is 31 characters long, not 32"),
        (APIV3_KEY + "q", "WECHAT_APIV3_KEY is 33 characters long, not 32"),
        ("密" * 32, "WECHAT_APIV3_KEY has characters that are not ASCII"),
    ],
)
def test_v3_refuses_an_apiv3_key_that_is_not_32_ascii_characters_and_gives_its_length(settings, v3, value, said):
    found = ids(settings, **{**v3, "WECHAT_APIV3_KEY": value})
    assert set(found) == {"wxrecharge.E008"}
    assert said in found["wxrecharge.E008"].msg
    assert "设置APIv3密钥" in found["wxrecharge.E008"].hint


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("/nonexistent/pub_key.pem", "WECHAT_PAY_PUBLIC_KEY cannot be read"),
        ("{not_pem}", "WECHAT_PAY_PUBLIC_KEY is not a PEM public key"),
        ("{certificate}", "WECHAT_PAY_PUBLIC_KEY is not a PEM public key (it is a certificate)"),
        ("{merchant_key}", "WECHAT_PAY_PUBLIC_KEY is not a PEM public key"),
        ("{ec_public_key}", "WECHAT_PAY_PUBLIC_KEY is not an RSA public key"),
    ],
    ids=["missing", "not-pem", "certificate", "private-key", "ec-key"],
)
def test_v3_refuses_a_wechat_pay_public_key_it_cannot_verify_with(settings, v3, keys, value, said):
    found = ids(settings, **{**v3, "WECHAT_PAY_PUBLIC_KEY": value.format(**vars(keys))})
    assert set(found) == {"wxrecharge.E009"}
    assert said in found["wxrecharge.E009"].msg
    assert "pub_key.pem" in found["wxrecharge.E009"].hint


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"WECHAT_PAY_PUBLIC_KEY_ID": ""}, "WECHAT_PAY_PUBLIC_KEY is set but WECHAT_PAY_PUBLIC_KEY_ID is not"),
        ({"WECHAT_PAY_PUBLIC_KEY": ""}, "WECHAT_PAY_PUBLIC_KEY_ID is set but WECHAT_PAY_PUBLIC_KEY is not"),
        ({"WECHAT_PAY_PUBLIC_KEY_ID": "PUB_KEY_ID_"}, "is not PUB_KEY_ID_ followed by digits"),
        ({"WECHAT_PAY_PUBLIC_KEY_ID": "pub_key_id_0114"}, "is not PUB_KEY_ID_ followed by digits"),
        ({"WECHAT_PAY_PUBLIC_KEY_ID": CERT_SERIAL}, "is not PUB_KEY_ID_ followed by digits"),
        ({"WECHAT_PAY_PUBLIC_KEY_ID": "PUB_KEY_ID_0114\n"}, "is not PUB_KEY_ID_ followed by digits"),
    ],
    ids=["key-without-id", "id-without-key", "bare-prefix", "lower-case", "a-certificate-serial", "trailing-newline"],
)
def test_v3_refuses_a_public_key_id_without_its_key_or_of_the_wrong_form(settings, v3, overrides, said):
    found = ids(settings, **{**v3, **overrides})
    assert set(found) == {"wxrecharge.E010"}
    assert found["wxrecharge.E010"].is_serious()
    assert said in found["wxrecharge.E010"].msg


def test_an_unreadable_public_key_without_its_id_is_reported_for_both(settings, v3):
    found = ids(settings, **{**v3, "WECHAT_PAY_PUBLIC_KEY": "/nonexistent/pub_key.pem", "WECHAT_PAY_PUBLIC_KEY_ID": ""})
    assert set(found) == {"wxrecharge.E009", "wxrecharge.E010"}


def test_v3_without_the_public_key_warns_of_platform_certificate_mode(settings, v3):
    found = ids(settings, **{**v3, "WECHAT_PAY_PUBLIC_KEY": "", "WECHAT_PAY_PUBLIC_KEY_ID": ""})
    assert set(found) == {"wxrecharge.W004"}
    warning = found["wxrecharge.W004"]
    assert not warning.is_serious()
    assert "/v3/certificates" in warning.msg
    assert "October 2024" in warning.hint and "WECHAT_PAY_PUBLIC_KEY_ID" in warning.hint


def test_every_v3_fault_at_once_is_reported_with_its_own_id(settings, v3):
    found = ids(
        settings,
        **{
            **v3,
            "WECHAT_MCH_PRIVATE_KEY": "",
            "WECHAT_MCH_CERT_SERIAL": "",
            "WECHAT_APIV3_KEY": "",
            "WECHAT_PAY_PUBLIC_KEY": "/nonexistent/pub_key.pem",
            "WECHAT_PAY_PUBLIC_KEY_ID": "x",
        },
    )
    assert set(found) == {"wxrecharge.E006", "wxrecharge.E007", "wxrecharge.E008", "wxrecharge.E009", "wxrecharge.E010"}
    assert all(message.is_serious() for message in found.values())


@pytest.mark.parametrize("secret", [APIV3_KEY[:31], APIV3_KEY + "q"], ids=["31", "33"])
def test_a_wrong_apiv3_key_is_never_quoted(settings, v3, secret):
    found = ids(settings, **{**v3, "WECHAT_APIV3_KEY": secret})
    assert set(found) == {"wxrecharge.E008"}
    assert secret[:16] not in found["wxrecharge.E008"].msg + found["wxrecharge.E008"].hint


@pytest.mark.parametrize(
    "where",
    ["WECHAT_MCH_PRIVATE_KEY", "WECHAT_MCH_CERT_SERIAL", "WECHAT_PAY_PUBLIC_KEY", "WECHAT_PAY_PUBLIC_KEY_ID", "WECHAT_PAY_API"],
)
def test_the_apiv3_key_pasted_into_the_wrong_variable_is_never_quoted(settings, v3, where):
    found = ids(settings, **{**v3, where: APIV3_KEY})
    assert found  # a fault is reported ...
    for message in found.values():  # ... without the key in it
        assert APIV3_KEY[:16] not in message.msg + (message.hint or "")


# --- renamed settings ----------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_the_old_name_of_the_trusted_proxy_count_in_the_environment_refuses_the_start_naming_the_new_one(
    settings,
    monkeypatch,
    debug,
):
    settings.DEBUG = debug
    monkeypatch.setenv("AXES_IPWARE_PROXY_COUNT", "1")
    [error] = check_renamed_settings()
    assert error.id == "wxrecharge.E011" and error.is_serious()
    assert "AXES_IPWARE_PROXY_COUNT is set (in the environment)" in error.msg
    assert "DJANGO_TRUSTED_PROXY_COUNT" in error.msg and "Set DJANGO_TRUSTED_PROXY_COUNT" in error.hint


def test_the_old_name_set_in_the_settings_is_refused_too_but_not_django_axes_own_default(settings, monkeypatch):
    monkeypatch.delenv("AXES_IPWARE_PROXY_COUNT", raising=False)
    assert settings.AXES_IPWARE_PROXY_COUNT is None  # what django-axes defines when nobody sets it
    assert check_renamed_settings() == []
    settings.AXES_IPWARE_PROXY_COUNT = 1
    [error] = check_renamed_settings()
    assert error.id == "wxrecharge.E011" and "(in the settings)" in error.msg


def test_the_value_of_the_old_name_is_never_quoted(settings, monkeypatch):
    monkeypatch.setenv("AXES_IPWARE_PROXY_COUNT", APIV3_KEY)  # a secret pasted into the wrong variable
    settings.AXES_IPWARE_PROXY_COUNT = APIV3_KEY
    [error] = check_renamed_settings()
    assert "in the environment and in the settings" in error.msg
    assert APIV3_KEY[:16] not in error.msg + error.hint


# --- the WECHAT_SANDBOX variable ---------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "sandbox", "refused"),
    [
        (None, False, False),
        (None, True, False),
        (False, False, False),
        (True, True, False),
        (True, False, True),
        (False, True, True),
    ],
)
def test_the_sandbox_variable_is_refused_when_it_says_the_opposite_of_the_settings_module(settings, variable, sandbox, refused):
    settings.WECHAT_SANDBOX_VARIABLE = variable
    settings.WECHAT_SANDBOX = sandbox
    found = check_sandbox_variable()
    assert [error.id for error in found] == (["wxrecharge.E012"] if refused else [])
    if refused:
        assert "devtools.settings" in found[0].hint and "wxrecharge.settings" in found[0].hint


# --- the whole start, through the real settings -----------------------------------------


def _manage_py_check(*args, **env):
    import os
    import subprocess
    import sys

    from django.conf import settings as dj

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WECHAT_", "SITE_URL", "DATABASE_"))}
    clean.update(
        {"DJANGO_DEBUG": "0", "DJANGO_SETTINGS_MODULE": "wxrecharge.settings", "DATABASE_URL": "sqlite:///:memory:", **env}
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args], cwd=dj.BASE_DIR, env=clean, capture_output=True, text=True, timeout=120
    )


def test_manage_py_check_fails_for_a_production_start_without_secrets():
    result = _manage_py_check()
    assert result.returncode != 0
    assert "wxrecharge.E001" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr
    assert "wxrecharge.E005" in result.stderr and "WECHAT_PAY_API" in result.stderr
    assert "wxrecharge.E003" in result.stderr and "WECHAT_APPID" in result.stderr
    assert "run with DJANGO_DEBUG=1" in result.stderr  # what to do on a developer's machine


def test_manage_py_check_deploy_passes_a_v3_production_environment_without_warnings(keys):
    result = _manage_py_check(
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SECRET_KEY="ci-" + "x7Kq" * 16,
        DJANGO_ALLOWED_HOSTS="pay.example.com",
        SITE_URL="https://pay.example.com",
        WECHAT_SANDBOX="0",
        WECHAT_APPID="wx0123456789abcdef",
        WECHAT_APP_SECRET="0123456789abcdef0123456789abcdef",
        WECHAT_MCH_ID="1230000109",
        WECHAT_PAY_API="v3",
        WECHAT_MCH_PRIVATE_KEY=keys.merchant_key,
        WECHAT_MCH_CERT_SERIAL=CERT_SERIAL,
        WECHAT_APIV3_KEY=APIV3_KEY,
        WECHAT_PAY_PUBLIC_KEY=keys.pub_key,
        WECHAT_PAY_PUBLIC_KEY_ID="PUB_KEY_ID_0112345678901234567890123456789012",
    )
    assert result.returncode == 0, result.stderr
    assert APIV3_KEY not in result.stdout + result.stderr


def test_manage_py_check_refuses_a_start_that_still_sets_the_old_proxy_count_even_in_debug():
    result = _manage_py_check(DJANGO_DEBUG="1", AXES_IPWARE_PROXY_COUNT="1")
    assert result.returncode != 0
    assert re.findall(r"wxrecharge\.E\d+", result.stderr) == ["wxrecharge.E011"]
    assert "DJANGO_TRUSTED_PROXY_COUNT" in result.stderr


def test_manage_py_check_refuses_the_sandbox_variable_under_the_production_settings_even_in_debug():
    result = _manage_py_check(DJANGO_DEBUG="1", WECHAT_SANDBOX="1")
    assert result.returncode != 0
    assert re.findall(r"wxrecharge\.E\d+", result.stderr) == ["wxrecharge.E012"]
    assert "DJANGO_SETTINGS_MODULE=devtools.settings" in result.stderr


def test_manage_py_check_passes_the_sandbox_settings_in_debug_and_refuses_them_with_debug_off():
    assert _manage_py_check(DJANGO_DEBUG="1", DJANGO_SETTINGS_MODULE="devtools.settings").returncode == 0
    result = _manage_py_check(DJANGO_SETTINGS_MODULE="devtools.settings", DJANGO_SECRET_KEY="ci-" + "x7Kq" * 16)
    assert result.returncode != 0
    assert re.findall(r"wxrecharge\.E\d+", result.stderr) == ["wxrecharge.E002"]


@pytest.mark.parametrize("variable", ["DJANGO_DEBUG", "WECHAT_SANDBOX"])
def test_a_yes_no_setting_that_says_neither_refuses_the_start(variable):
    """django-environ reads an unknown word as False: `DJANGO_DEBUG=ture` would quietly be off."""
    result = _manage_py_check(**{"DJANGO_DEBUG": "1", variable: "ture"})
    assert result.returncode != 0
    assert f"{variable}='ture' is neither yes nor no" in result.stderr


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("off", False),
        ("", None),
    ],
)
def test_yes_no_settings_take_the_usual_words(monkeypatch, text, value):
    from common.env import Env

    monkeypatch.setenv("WXR_TEST_SWITCH", text)
    assert Env().bool("WXR_TEST_SWITCH", default=None) is value


def test_webhooks_to_private_addresses_in_production_are_warned_of(settings):
    for name, value in {**PRODUCTION, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": True}.items():
        setattr(settings, name, value)
    assert [m.id for m in check_production_configuration()] == ["wxrecharge.W005"]
