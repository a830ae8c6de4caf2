"""A small WeChat Pay API v3 client: request signing, answer and notify verification, AES-GCM decryption.

There is no official Python SDK (docs/wechat-pay-v3.md#7-libraries), and the protocol is small: a
SHA256withRSA signature on each request, WeChat's signature on each answer and notify
(checked with the 微信支付公钥 or a platform certificate, picked by `Wechatpay-Serial`),
and AES-256-GCM under the APIv3 key for notify resources and certificate downloads.
Only `cryptography` and `requests`; configured by its constructor, never from settings.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

logger = logging.getLogger(__name__)

AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"
MAX_CLOCK_SKEW = 300  # seconds: WeChat refuses requests, and we refuse answers, more than 5 minutes off
PROBE_PREFIX = "WECHATPAY/SIGNTEST/"
PUB_KEY_PREFIX = "PUB_KEY_ID_"
AEAD_ALGORITHM = "AEAD_AES_256_GCM"
USER_AGENT = "wxrecharge"
# Codes after which the same request may succeed later (docs/wechat-pay-v3.md#error-codes), plus our own transport codes.
RETRYABLE_CODES = frozenset({"SYSTEM_ERROR", "FREQUENCY_LIMITED", "NETWORK", "BAD_ANSWER", "ANSWER_SIGNATURE", "USER_PAYING"})


class V3Error(Exception):
    """A v3 call failed. code: WeChat's `code` (e.g. ORDER_NOT_EXIST, SIGN_ERROR, SYSTEM_ERROR) or NETWORK / BAD_ANSWER /
    ANSWER_SIGNATURE; status: HTTP status or None; request_id: the answer's Request-ID header or ""; retryable: bool."""

    def __init__(self, message: str, code: str, status: int | None = None, request_id: str = "", retryable: bool | None = None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.request_id = request_id
        if retryable is None:
            retryable = code in RETRYABLE_CODES or (status is not None and (status >= 500 or status in (202, 429)))
        self.retryable = retryable


class SignatureError(ValueError):
    """An answer or notify whose signature cannot be trusted. `probe` is True for a WECHATPAY/SIGNTEST/ signature."""

    def __init__(self, message: str, probe: bool = False):
        super().__init__(message)
        self.probe = probe


class DecryptError(ValueError):
    """An AES-GCM resource that does not decrypt (bad tag, another key, malformed fields or plaintext)."""


# -- primitives -----------------------------------------------------------------------------------


def _pem(pem: bytes | str) -> bytes:
    return pem.encode() if isinstance(pem, str) else pem


def load_private_key(pem: bytes | str) -> RSAPrivateKey:
    """The merchant API key (`apiclient_key.pem`): PKCS#8 PEM, or the older PKCS#1 `BEGIN RSA PRIVATE KEY`."""
    try:
        key = serialization.load_pem_private_key(_pem(pem), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, RSAPrivateKey):
        raise ValueError(f"the merchant key must be RSA, not {type(key).__name__}")
    return key


def load_public_key(pem: bytes | str) -> RSAPublicKey:
    """The 微信支付公钥 (`pub_key.pem`, SubjectPublicKeyInfo) or a platform certificate (X.509 PEM)."""
    data = _pem(pem)
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)  # type: ignore[assignment]  # RSA is checked below
    except ValueError as exc:
        raise ValueError(f"not a PEM public key or X.509 certificate: {exc}") from exc
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"WeChat's key must be RSA, not {type(key).__name__}")
    return key


def rsa_sign(private_key: RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), Base64: requests' `signature` and the JSAPI `paySign`."""
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(public_key: RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    """True if `signature_b64` is WeChat's SHA256withRSA signature of `message`; False for anything else."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):  # binascii.Error is a ValueError
        return False
    return True


def aes_gcm_decrypt(apiv3_key: str, nonce: str, associated_data: str, ciphertext_b64: str) -> bytes:
    """AEAD_AES_256_GCM as WeChat uses it: key = the APIv3 key's 32 bytes, nonce and AAD = the UTF-8 bytes of the
    given strings, ciphertext = Base64 of ciphertext‖16-byte tag."""
    key = apiv3_key.encode()
    if len(key) != 32:
        raise DecryptError(f"the APIv3 key must be 32 bytes, not {len(key)}")
    try:
        ciphertext = base64.b64decode(ciphertext_b64, validate=True)
        return AESGCM(key).decrypt(nonce.encode(), ciphertext, associated_data.encode())
    except InvalidTag as exc:
        raise DecryptError("the resource does not decrypt (bad tag or another APIv3 key)") from exc
    except (ValueError, TypeError, AttributeError) as exc:  # bad Base64, a nonce of the wrong size, a non-string
        raise DecryptError(f"malformed resource: {exc}") from exc


def make_nonce() -> str:
    """32 random upper-case hex characters (WeChat accepts up to 32 of [0-9A-Za-z])."""
    return secrets.token_hex(16).upper()


def authorization(
    mchid: str,
    serial_no: str,
    private_key: RSAPrivateKey,
    method: str,
    path_with_query: str,
    body: bytes,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> str:
    """The `Authorization` header: the merchant's signature over `METHOD\\nPATH_WITH_QUERY\\nTS\\nNONCE\\nBODY\\n`, where
    the path is exactly the one sent (no host) and the body is exactly the bytes sent (empty for GET)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or make_nonce()
    message = f"{method.upper()}\n{path_with_query}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
    signature = rsa_sign(private_key, message)
    return (
        f'{AUTH_SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def pay_sign(private_key: RSAPrivateKey, appid: str, timestamp: str, nonce: str, package: str) -> str:
    """The JSAPI / mini-program `paySign` (signType RSA) over `appId\\ntimeStamp\\nnonceStr\\npackage\\n`."""
    return rsa_sign(private_key, f"{appid}\n{timestamp}\n{nonce}\n{package}\n".encode())


# -- WeChat's keys and its signatures ---------------------------------------------------------------


def normalise_serial(serial: str) -> str:
    """Certificate serials compare case-insensitively, with or without a leading 0x."""
    serial = serial.strip()
    if serial[:2].lower() == "0x":
        serial = serial[2:]
    return serial.upper()


class KeyStore:
    """serial -> public key. Holds the 微信支付公钥 under its PUB_KEY_ID_… id (if configured) and platform certificates by
    their serial (upper-case hex). `fetch` (optional callable returning {serial: public_key}) is called when an unknown
    serial that does not start with PUB_KEY_ID_ shows up, at most once every `refetch_seconds` (default 600) per store,
    so a flood of unknown serials cannot make us hammer /v3/certificates."""

    def __init__(
        self,
        public_key: RSAPublicKey | None = None,
        public_key_id: str = "",
        fetch: Callable[[], Mapping[str, RSAPublicKey]] | None = None,
        refetch_seconds: int = 600,
    ):
        self._keys: dict[str, RSAPublicKey] = {}
        self._fetch = fetch
        self._refetch_seconds = refetch_seconds
        self._fetched_at: float | None = None
        self._lock = threading.RLock()  # re-entrant: a fetch that verifies through this store finds the window closed
        self._clock = time.monotonic
        if public_key is not None:
            if not public_key_id:
                raise ValueError("the WeChat Pay public key needs its PUB_KEY_ID_… id")
            self.add(public_key_id, public_key)

    def add(self, serial: str, public_key: RSAPublicKey) -> None:
        self._keys[normalise_serial(serial)] = public_key

    def get(self, serial: str, *, fetch: bool = True) -> RSAPublicKey | None:
        """The key for `serial`; an unknown certificate serial may trigger one (rate-limited) certificate fetch."""
        serial = normalise_serial(serial)
        key = self._keys.get(serial)
        if key is not None or not fetch or self._fetch is None or serial.startswith(PUB_KEY_PREFIX):
            return key
        with self._lock:
            if serial in self._keys:  # another thread's fetch brought it
                return self._keys[serial]
            now = self._clock()
            if self._fetched_at is not None and now - self._fetched_at < self._refetch_seconds:
                return None
            self._fetched_at = now
            try:
                fetched = self._fetch()
            except (V3Error, ValueError) as exc:
                logger.warning("wechatpay v3: certificate fetch for serial %s failed: %s", serial, exc)
                return None
            for fetched_serial, public_key in fetched.items():
                self.add(fetched_serial, public_key)
            return self._keys.get(serial)


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def verify_signed(keys: KeyStore, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str:
    """Check Wechatpay-Timestamp/-Nonce/-Signature/-Serial over "TS\\nNONCE\\nBODY\\n" (raw bytes). Returns the serial used.
    Raises SignatureError: missing header; timestamp not an integer or more than 5 minutes off (either way); probe
    signature (probe=True); unknown serial; signature mismatch. Headers lookup is case-insensitive (accept a plain dict
    with any case, or requests' CaseInsensitiveDict). Wechatpay-Signature-Type, if present, must be WECHATPAY2-SHA256-RSA2048
    (if absent, accept: WeChat documents it but not every answer carries it)."""
    lowered = _lower_keys(headers)
    fields = {}
    for name in ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"):
        fields[name] = (lowered.get(name.lower()) or "").strip()
        if not fields[name]:
            raise SignatureError(f"missing {name} header")
    timestamp, nonce, signature, serial = fields.values()
    signature_type = lowered.get("wechatpay-signature-type")
    if signature_type is not None and signature_type.strip() != AUTH_SCHEMA:
        raise SignatureError(f"unsupported Wechatpay-Signature-Type {signature_type!r}")
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise SignatureError(f"Wechatpay-Timestamp {timestamp!r} is not an integer")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > MAX_CLOCK_SKEW:
        raise SignatureError(f"Wechatpay-Timestamp {timestamp} is more than {MAX_CLOCK_SKEW}s off")
    if signature.startswith(PROBE_PREFIX):
        raise SignatureError("WeChat's signature probe (WECHATPAY/SIGNTEST/): must fail so WeChat resends", probe=True)
    public_key = keys.get(serial)
    if public_key is None:
        raise SignatureError(f"unknown Wechatpay-Serial {serial}")
    if not rsa_verify(public_key, f"{timestamp}\n{nonce}\n".encode() + body + b"\n", signature):
        raise SignatureError(f"the signature does not verify with the key {serial}")
    return normalise_serial(serial)


# -- the client ---------------------------------------------------------------------------------------


class Client:
    """The merchant's v3 API: signed requests, verified answers, decrypted notifies and certificates."""

    def __init__(
        self,
        *,
        mchid: str,
        serial_no: str,
        private_key: RSAPrivateKey,
        apiv3_key: str,
        base_url: str,
        keys: KeyStore,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        public_key_id: str = "",
    ):
        self.mchid = mchid
        self.serial_no = serial_no
        self.private_key = private_key
        self.apiv3_key = apiv3_key
        self.base_url = base_url.rstrip("/")
        self._base_path = urlsplit(self.base_url).path  # e.g. "/sandbox": the server verifies the path after it
        self.keys = keys
        self.timeout = timeout
        self.session = session or requests.Session()
        self.public_key_id = public_key_id

    def __repr__(self) -> str:  # never show the keys
        return f"<wxproto.v3.Client mchid={self.mchid} base_url={self.base_url}>"

    def _send(self, method: str, url: str, body: bytes | None, relative: bool, stream: bool = False) -> requests.Response:
        """Sign and send one request; non-2xx and transport failures become V3Error.

        The signed path is taken from the prepared request, so it is the path exactly as sent (requests quotes
        characters such as `|` that out_trade_no allows); `relative` strips the base URL's path prefix from it."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.public_key_id:
            headers["Wechatpay-Serial"] = self.public_key_id  # so WeChat signs its answer with the public key
        prepared = self.session.prepare_request(requests.Request(method, url, headers=headers, data=body))
        signed_path = prepared.path_url
        if relative and self._base_path and signed_path.startswith(self._base_path + "/"):
            signed_path = signed_path[len(self._base_path) :]
        prepared.headers["Authorization"] = authorization(
            self.mchid, self.serial_no, self.private_key, method, signed_path, body or b""
        )
        log_path = signed_path.split("?", 1)[0]  # a bill's download token stays out of the logs
        started = time.monotonic()
        status: int | str = "-"
        try:
            env = self.session.merge_environment_settings(prepared.url or "", {}, stream, None, None)
            response = self.session.send(prepared, timeout=self.timeout, allow_redirects=False, **env)
            status = response.status_code
        except requests.RequestException as exc:
            raise V3Error(f"{method} {log_path}: {exc.__class__.__name__}", "NETWORK") from exc
        finally:
            logger.info("wechatpay v3 %s %s %s %.0fms", method, log_path, status, (time.monotonic() - started) * 1000)
        if not 200 <= response.status_code < 300:
            code, message = f"HTTP_{response.status_code}", ""
            try:
                answer = json.loads(response.content)
            except ValueError:
                answer = None
            if isinstance(answer, dict) and isinstance(answer.get("code"), str) and answer["code"]:
                code, message = answer["code"], str(answer.get("message", ""))
            raise V3Error(
                f"{method} {log_path}: HTTP {response.status_code} {code} {message}".rstrip(),
                code,
                response.status_code,
                response.headers.get("Request-ID", ""),
            )
        return response

    @staticmethod
    def _check_signature(keys: KeyStore, response: requests.Response, what: str) -> None:
        """A 2xx answer must carry WeChat's signature: one without, or with a bad one, is a forgery."""
        try:
            verify_signed(keys, response.headers, response.content)
        except SignatureError as exc:
            raise V3Error(
                f"{what}: the answer's signature cannot be trusted ({exc})",
                "ANSWER_SIGNATURE",
                response.status_code,
                response.headers.get("Request-ID", ""),
            ) from exc

    @staticmethod
    def _json_object(response: requests.Response, what: str) -> dict | None:
        if not response.content:
            return None
        try:
            answer = json.loads(response.content)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise V3Error(
                f"{what}: the answer is not a JSON object",
                "BAD_ANSWER",
                response.status_code,
                response.headers.get("Request-ID", ""),
            )
        return answer

    def request(self, method: str, path: str, *, query: dict | None = None, body: dict | None = None) -> tuple[int, dict | None]:
        """Call `path` (starting with /v3/) and return (status, the verified answer's JSON object, or None if empty).

        The body is serialised once and those exact bytes are signed and sent (serialising twice is the classic
        401 SIGN_ERROR); the signed path is relative to the base URL, with the query as sent."""
        method = method.upper()
        url = self.base_url + path + ("?" + urlencode(query) if query else "")
        data = None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        response = self._send(method, url, data, relative=True)
        what = f"{method} {path}"
        self._check_signature(self.keys, response, what)
        return response.status_code, self._json_object(response, what)

    def download(self, url: str) -> bytes:
        """GET a bill's `download_url` with a signed Authorization. The answer is not signed by WeChat: the caller
        checks its SHA1 against the bill answer's hash_value. Non-2xx -> V3Error as for `request`."""
        return self._send("GET", url, None, relative=url.startswith(self.base_url + "/")).content

    def download_to(self, url: str, write: Callable[[bytes], object], chunk_bytes: int = 256 * 1024) -> None:
        """`download`, the body handed to `write` as it arrives (a day's bill may be hundreds of megabytes)."""
        with self._send("GET", url, None, relative=url.startswith(self.base_url + "/"), stream=True) as response:
            try:
                for chunk in response.iter_content(chunk_bytes):
                    write(chunk)
            except requests.RequestException as exc:
                raise V3Error(f"GET bill: {exc.__class__.__name__}", "NETWORK") from exc

    def fetch_certificates(self) -> dict[str, RSAPublicKey]:
        """GET /v3/certificates: {serial_no: public_key} of the unexpired platform certificates.

        Each certificate is AEAD_AES_256_GCM-encrypted under the APIv3 key. The answer is verified with a key we already
        know, or else with the certificates it carries (WeChat's bootstrap rule: only WeChat holds our APIv3 key, so a
        certificate that decrypts is WeChat's). Raises V3Error, or DecryptError if a certificate does not decrypt."""
        response = self._send("GET", self.base_url + "/v3/certificates", None, relative=True)
        what = "GET /v3/certificates"
        answer = self._json_object(response, what) or {}
        items = answer.get("data")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise V3Error(f"{what}: no data list", "BAD_ANSWER", response.status_code, response.headers.get("Request-ID", ""))
        now = datetime.now(UTC)
        current: dict[str, RSAPublicKey] = {}
        for item in items:
            listed = normalise_serial(str(item.get("serial_no", "")))
            pem = self._decrypt_fields(item.get("encrypt_certificate"))
            try:
                certificate = x509.load_pem_x509_certificate(pem)
            except ValueError as exc:
                raise DecryptError(f"certificate {listed} is not an X.509 PEM: {exc}") from exc
            serial = format(certificate.serial_number, "X")
            if listed and listed.lstrip("0") != serial:
                logger.warning("wechatpay v3: certificate listed as %s has serial %s; skipped", listed, serial)
                continue
            public_key = certificate.public_key()
            if certificate.not_valid_after_utc < now or not isinstance(public_key, RSAPublicKey):
                continue
            current[listed or serial] = public_key
        trust = KeyStore()
        for serial, public_key in current.items():
            trust.add(serial, public_key)
        answer_serial = _lower_keys(response.headers).get("wechatpay-serial", "")
        known = self.keys.get(answer_serial, fetch=False) if answer_serial else None
        if known is not None:
            trust.add(answer_serial, known)
        self._check_signature(trust, response, what)
        return current

    def _decrypt_fields(self, resource: object) -> bytes:
        if not isinstance(resource, Mapping):
            raise DecryptError("the encrypted resource is not an object")
        if resource.get("algorithm") != AEAD_ALGORITHM:
            raise DecryptError(f"unsupported algorithm {resource.get('algorithm')!r}")
        ciphertext, nonce = resource.get("ciphertext"), resource.get("nonce")
        associated_data = resource.get("associated_data", "")  # authenticated by the tag: absent means empty
        if not all(isinstance(value, str) for value in (ciphertext, nonce, associated_data)) or not ciphertext or not nonce:
            raise DecryptError("the resource lacks ciphertext, nonce or associated_data")
        return aes_gcm_decrypt(self.apiv3_key, nonce, associated_data, ciphertext)

    def decrypt_resource(self, resource: Mapping) -> dict:
        """A notify's resource {algorithm: AEAD_AES_256_GCM, ciphertext, associated_data, nonce} -> the decrypted JSON object.
        DecryptError if the algorithm is another, fields missing, tag bad, or the plaintext is not a JSON object."""
        plaintext = self._decrypt_fields(resource)
        try:
            fields = json.loads(plaintext)
        except ValueError as exc:
            raise DecryptError("the decrypted resource is not JSON") from exc
        if not isinstance(fields, dict):
            raise DecryptError("the decrypted resource is not a JSON object")
        return fields

    def parse_notify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> tuple[dict, dict]:
        """Verify a payment or refund notify, then decrypt it: (envelope, resource plaintext).

        Verification comes first, over the raw body. Raises SignatureError (a probe has `probe` set), DecryptError, or
        ValueError for a body that is not a JSON object with resource_type "encrypt-resource", event_type and resource."""
        verify_signed(self.keys, headers, body, now=now)
        try:
            envelope = json.loads(body)
        except ValueError as exc:  # also invalid UTF-8
            raise ValueError(f"the notify is not JSON: {exc}") from exc
        if not isinstance(envelope, dict):
            raise ValueError("the notify is not a JSON object")
        if envelope.get("resource_type") != "encrypt-resource":
            raise ValueError(f"unexpected resource_type {envelope.get('resource_type')!r}")
        if not isinstance(envelope.get("event_type"), str) or not envelope["event_type"]:
            raise ValueError("the notify has no event_type")
        if not isinstance(envelope.get("resource"), dict):
            raise ValueError("the notify has no resource object")
        return envelope, self.decrypt_resource(envelope["resource"])
