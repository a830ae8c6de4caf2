"""API v3 signatures and encryption, as WeChat's side computes them (docs/wechat-pay-v3.md:
#2-signing-a-request, #3-verifying-answers-and-notifies, #6-notifies).

The sandbox's own small helpers, on `cryptography` alone: it must not merely agree with
the merchant client (payments/), and must stay liftable as a package of its own. No
Django here.

- A request is signed by the merchant over `METHOD\\nPATH_WITH_QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`
  (SHA256withRSA, PKCS#1 v1.5, Base64) and says so in `Authorization`.
- An answer or a notify is signed by WeChat over `TIMESTAMP\\nNONCE\\nBODY\\n` with the key its
  `Wechatpay-Serial` names: the 微信支付公钥's `PUB_KEY_ID_…` or a platform certificate serial.
- Notify resources (and certificate downloads) are AES-256-GCM with the APIv3 key, a
  12-character ASCII nonce used as its UTF-8 bytes, and `ciphertext = Base64(ct ‖ tag)`.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from devtools.wechat_sandbox.keys import SandboxKeys, load_private_key

SCHEME = "WECHATPAY2-SHA256-RSA2048"
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"
AUTH_ITEMS = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")
ALPHANUMERIC = string.ascii_letters + string.digits
_AUTH_ITEM = re.compile(r'\s*([A-Za-z_]+)="([^"]*)"\s*(,|$)')


def nonce(length: int = 32) -> str:
    return "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))


def sign(private_key, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), Base64."""
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def verify(public_key, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def request_message(method: str, path_with_query: str, timestamp: str, nonce_str: str, body: bytes) -> bytes:
    return f"{method}\n{path_with_query}\n{timestamp}\n{nonce_str}\n".encode() + body + b"\n"


def answer_message(timestamp: str, nonce_str: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce_str}\n".encode() + body + b"\n"


class AuthorizationError(ValueError):
    """The Authorization header is missing or not WeChat's format."""


def parse_authorization(header: str) -> dict[str, str]:
    """`WECHATPAY2-SHA256-RSA2048 k="v",…` with the five items in any order, each once."""
    scheme, _, rest = (header or "").strip().partition(" ")
    if scheme != SCHEME:
        raise AuthorizationError("unknown scheme")
    items: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _AUTH_ITEM.match(rest, position)
        if match is None:
            raise AuthorizationError("malformed item")
        name, value, separator = match.groups()
        if name in items:
            raise AuthorizationError(f"{name} twice")
        items[name] = value
        position = match.end()
        if not separator and position < len(rest):
            raise AuthorizationError("malformed item")
    missing = [name for name in AUTH_ITEMS if not items.get(name)]
    if missing:
        raise AuthorizationError("missing " + ", ".join(missing))
    return items


def encrypt(apiv3_key: str, plaintext: bytes, associated_data: str) -> dict[str, str]:
    """An `encrypt-resource`: AEAD_AES_256_GCM with a fresh 12-character nonce."""
    nonce_str = nonce(12)
    sealed = AESGCM(apiv3_key.encode()).encrypt(nonce_str.encode(), plaintext, associated_data.encode())
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode("ascii"),
        "associated_data": associated_data,
        "nonce": nonce_str,
    }


def flip_tag(ciphertext: str) -> str:
    """The same ciphertext with one bit of its GCM tag (the last 16 bytes) flipped."""
    sealed = bytearray(base64.b64decode(ciphertext))
    sealed[-1] ^= 0x01
    return base64.b64encode(bytes(sealed)).decode("ascii")


def corrupted(signature: str) -> str:
    """A signature one character off (the corrupt_signature switch)."""
    return ("0" if signature[0] != "0" else "1") + signature[1:]


@dataclass(frozen=True)
class Signer:
    """One of WeChat's signing keys and the serial that names it in `Wechatpay-Serial`."""

    serial: str
    private_key: object

    def headers(self, body: bytes, *, timestamp: int | None = None, probe: bool = False, corrupt: bool = False) -> dict[str, str]:
        """WeChat's Wechatpay-* headers over `body`. `probe` makes a signature probe (starts
        with WECHATPAY/SIGNTEST/, never verifies); `corrupt` one character off."""
        timestamp_str = str(int(time.time()) if timestamp is None else timestamp)
        nonce_str = nonce()
        signature = sign(self.private_key, answer_message(timestamp_str, nonce_str, body))
        if probe:
            signature = PROBE_PREFIX + signature[len(PROBE_PREFIX) :]
        if corrupt:
            signature = corrupted(signature)
        return {
            "Wechatpay-Timestamp": timestamp_str,
            "Wechatpay-Nonce": nonce_str,
            "Wechatpay-Signature": signature,
            "Wechatpay-Serial": self.serial,
            "Wechatpay-Signature-Type": SCHEME,
        }


@dataclass(frozen=True)
class WeChatKeys:
    """What WeChat holds for the merchant, loaded: the merchant's public key (to verify its
    requests and paySign), the APIv3 key, and WeChat's two signing keys."""

    files: SandboxKeys
    merchant_public_key: object
    apiv3_key: str
    pay: Signer  # the 微信支付公钥's private half, serial PUB_KEY_ID_…
    platform: Signer  # the platform certificate's key, serial = the certificate's
    platform_certificate: x509.Certificate
    platform_certificate_pem: str

    @classmethod
    def load(cls, files: SandboxKeys) -> WeChatKeys:
        pem = Path(files.platform_certificate).read_text()
        return cls(
            files=files,
            merchant_public_key=files.merchant_public_key(),
            apiv3_key=files.apiv3_key,
            pay=Signer(files.pay_public_key_id, load_private_key(files.pay_private_key)),
            platform=Signer(files.platform_serial, load_private_key(files.platform_private_key)),
            platform_certificate=x509.load_pem_x509_certificate(pem.encode()),
            platform_certificate_pem=pem,
        )

    @property
    def merchant_serial(self) -> str:
        return self.files.merchant_serial
