"""The WeChat Pay v2 wire format, shared by the merchant client and the sandbox.

Signing (docs/wechat-pay-v2.md#1-signing), safe parsing of untrusted XML, building XML, and the
refund notify's `req_info` encryption (docs/wechat-pay-v2.md#41-refund-notify). No network here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"
SIGN_TYPES = (MD5, HMAC_SHA256)
MAX_XML_BYTES = 64 * 1024
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class XMLError(ValueError):
    """The body is not the flat `<xml>` document WeChat Pay exchanges."""


def sign(params: dict[str, str], key: str, sign_type: str = MD5) -> str:
    """Sign as WeChat Pay v2 does: sorted non-empty params, `&key=`, MD5 or HMAC-SHA256."""
    pairs = [f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] not in ("", None)]
    text = "&".join([*pairs, f"key={key}"]).encode("utf-8")
    if sign_type == HMAC_SHA256:
        return hmac.new(key.encode("utf-8"), text, hashlib.sha256).hexdigest().upper()
    if sign_type == MD5:
        return hashlib.md5(text).hexdigest().upper()  # noqa: S324 (WeChat's protocol)
    raise ValueError(f"unknown sign_type {sign_type!r}")


def verify(params: dict[str, str], key: str, sign_type: str = MD5) -> bool:
    """Whether `params["sign"]` is right, compared in constant time."""
    received = params.get("sign") or ""
    try:
        expected = sign(params, key, sign_type)
    except ValueError:
        return False
    return hmac.compare_digest(received.encode("utf-8"), expected.encode("utf-8"))


def parse_xml(body: bytes | str, root: str = "xml") -> dict[str, str]:
    """Parse WeChat Pay XML into a flat dict, refusing anything else.

    Refused: DTDs and entities (WeChat Pay's XXE advisory), bodies over MAX_XML_BYTES,
    non-UTF-8 text, another root, nested elements and repeated fields (a second
    `total_fee` must not be able to shadow the signed one).
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not body or not body.strip():
        raise XMLError("empty body")
    if len(body) > MAX_XML_BYTES:
        raise XMLError("body too large")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise XMLError("not UTF-8") from exc
    try:
        element = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ParseError, ValueError) as exc:
        raise XMLError(f"not valid XML: {exc.__class__.__name__}") from exc
    if element.tag != root:
        raise XMLError(f"root is not <{root}>")
    fields: dict[str, str] = {}
    for child in element:
        if not isinstance(child.tag, str) or not _FIELD_NAME.match(child.tag):
            raise XMLError("bad field name")
        if len(child):
            raise XMLError(f"nested element in {child.tag}")
        if child.tag in fields:
            raise XMLError(f"repeated field {child.tag}")
        fields[child.tag] = (child.text or "").strip()
    return fields


def to_xml(params: dict[str, object], root: str = "xml") -> str:
    """Build WeChat Pay XML: numbers bare, text in CDATA."""
    parts = [f"<{root}>"]
    for key in sorted(params):
        value = params[key]
        if value is None:
            continue
        text = str(value)
        if text.isascii() and text.isdigit():
            parts.append(f"<{key}>{text}</{key}>")
        else:
            parts.append(f"<{key}><![CDATA[{text.replace(']]>', ']]]]><![CDATA[>')}]]></{key}>")
    parts.append(f"</{root}>")
    return "".join(parts)


def nonce(length: int = 32) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _refund_cipher(api_key: str) -> Cipher:
    key = hashlib.md5(api_key.encode("utf-8")).hexdigest().lower().encode("ascii")  # noqa: S324
    return Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 (WeChat's req_info format)


def encrypt_req_info(plaintext: str, api_key: str) -> str:
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode("utf-8")) + padder.finalize()
    encryptor = _refund_cipher(api_key).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode("ascii")


def decrypt_req_info(req_info: str, api_key: str) -> dict[str, str]:
    """Decrypt a refund notify's `req_info`; XMLError when it is not ours (a forgery)."""
    try:
        data = base64.b64decode(req_info, validate=True)
        decryptor = _refund_cipher(api_key).decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        plaintext = unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise XMLError("req_info does not decrypt") from exc
    return parse_xml(plaintext, root="root")
