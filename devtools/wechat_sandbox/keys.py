"""The sandbox's API v3 keys, generated on first start and kept out of git.

What WeChat Pay hands a merchant (docs/wechat-pay-v3.md#1-credentials), made up here:
- the merchant API key pair with a certificate serial (the merchant signs with it; the
  sandbox knows its public half, as WeChat knows the merchant's certificate);
- the 32-character APIv3 key (notify resources and certificate downloads);
- the 微信支付公钥 and its `PUB_KEY_ID_…` (WeChat's own key pair: the sandbox signs answers
  and notifies with the private half; the merchant verifies with `pub_key.pem`);
- a platform certificate with its own key pair and serial (older merchants, and the
  migration from certificates to the public key).

Only standard-library and `cryptography` code here: settings import this module before
Django is set up. Files are written to a fresh directory that is renamed into place, so
two processes starting at once end with one set of keys.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import string
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

MANIFEST = "sandbox-keys.json"


@dataclass(frozen=True)
class SandboxKeys:
    directory: Path
    merchant_key: Path  # apiclient_key.pem (PKCS#8): the merchant's, handed to the site's settings
    merchant_serial: str
    apiv3_key: str
    pay_private_key: Path  # WeChat's side only: signs answers and notifies
    pay_public_key: Path  # pub_key.pem: the merchant's copy of the 微信支付公钥
    pay_public_key_id: str
    platform_private_key: Path  # WeChat's side only: signs in certificate mode
    platform_certificate: Path
    platform_serial: str

    def merchant_public_key(self):
        return load_private_key(self.merchant_key).public_key()


def load_private_key(path: Path):
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_private(path: Path, key) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _certificate(key, common_name: str, serial: int) -> x509.Certificate:
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "沙箱 WeChat Pay")]
    )
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=5 * 365))
        .sign(key, hashes.SHA256())
    )


def _serial() -> int:
    # A 160-bit positive serial: written as 40 upper-case hex digits, like WeChat's.
    return secrets.randbits(159) | (1 << 156)


def _generate(directory: Path) -> dict:
    merchant_key, pay_key, platform_key = _new_key(), _new_key(), _new_key()
    _write_private(directory / "apiclient_key.pem", merchant_key)
    _write_private(directory / "wechatpay_private_key.pem", pay_key)
    (directory / "pub_key.pem").write_bytes(
        pay_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    _write_private(directory / "platform_private_key.pem", platform_key)
    platform_serial = _serial()
    (directory / "platform_cert.pem").write_bytes(
        _certificate(platform_key, "Tenpay.com Root CA (sandbox)", platform_serial).public_bytes(serialization.Encoding.PEM)
    )
    alphabet = string.ascii_letters + string.digits
    manifest = {
        "merchant_serial": f"{_serial():040X}",
        "apiv3_key": "".join(secrets.choice(alphabet) for _ in range(32)),
        "pay_public_key_id": "PUB_KEY_ID_" + "".join(secrets.choice(string.digits) for _ in range(34)),
        "platform_serial": f"{platform_serial:040X}",
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def ensure(directory: str | os.PathLike) -> SandboxKeys:
    """The keys in `directory`, generated there first if it holds none."""
    directory = Path(directory)
    if not (directory / MANIFEST).exists():
        directory.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".sandbox-keys-", dir=directory.parent))
        try:
            _generate(scratch)
            try:
                os.rename(scratch, directory)  # atomic; fails if another process got there first
            except OSError:
                if not (directory / MANIFEST).exists():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    manifest = json.loads((directory / MANIFEST).read_text())
    return SandboxKeys(
        directory=directory,
        merchant_key=directory / "apiclient_key.pem",
        merchant_serial=manifest["merchant_serial"],
        apiv3_key=manifest["apiv3_key"],
        pay_private_key=directory / "wechatpay_private_key.pem",
        pay_public_key=directory / "pub_key.pem",
        pay_public_key_id=manifest["pay_public_key_id"],
        platform_private_key=directory / "platform_private_key.pem",
        platform_certificate=directory / "platform_cert.pem",
        platform_serial=manifest["platform_serial"],
    )
