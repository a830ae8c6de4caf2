"""The errors of a call to WeChat and of a notify, the same for every API version and for
WeChat login (docs/wechat-pay-v2.md#error-codes-the-code-acts-on)."""

from __future__ import annotations

# err_codes after which the same request may succeed later (docs/wechat-pay-v2.md#error-codes-the-code-acts-on).
RETRYABLE_CODES = {"SYSTEMERROR", "BIZERR_NEED_RETRY", "FREQUENCY_LIMITED", "NETWORK", "45011", "-1"}


class WeChatError(Exception):
    """A call to WeChat failed. `code` is WeChat's err_code (or errcode, or NETWORK/FAIL);
    `kind` the same code normalised across API versions (the provider sets it);
    `status` and `request_id` the HTTP status and Request-ID of a v3 answer."""

    def __init__(self, message: str, code: str = "FAIL", retryable: bool = False):
        super().__init__(message)
        self.code = self.kind = code
        self.retryable = retryable or code in RETRYABLE_CODES
        self.status: int | None = None
        self.request_id = ""

    @property
    def answered(self) -> bool:
        """WeChat answered the request with a refusal (an error code, a protocol fault, or an
        answer whose signature does not verify), rather than the call failing on the way (no
        answer, an unreadable one, an HTTP error without WeChat's code, a success without its
        content): only after such a failure may WeChat have done what was asked."""
        return not (self.code in ("NETWORK", "BAD_ANSWER") or self.code.startswith("HTTP_"))


class NotifyError(ValueError):
    """A notify that must not be applied; `signature_valid` says how far it got, `retry`
    whether WeChat sending it again could help (a v3 notify is answered accordingly), and
    the order and refund numbers, when a verified notify was refused after they were read."""

    def __init__(
        self,
        message: str,
        signature_valid: bool | None = None,
        retry: bool = True,
        out_trade_no: str = "",
        out_refund_no: str = "",
    ):
        super().__init__(message)
        self.signature_valid = signature_valid
        self.retry = retry
        self.out_trade_no, self.out_refund_no = out_trade_no, out_refund_no
