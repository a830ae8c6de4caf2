"""The wire format shared by the merchant client and the sandbox (docs/wechat-pay-v2.md#1-signing and #41-refund-notify)."""

from __future__ import annotations

import pytest
from wechatpy.crypto import WeChatRefundCrypto
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac

from wxproto import v2 as wxpay

VECTOR_KEY = "192006250b4c09247ec02edce69f6a2d"
VECTOR = {
    "appid": "wxd930ea5d5a258f4f",
    "mch_id": "10000100",
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}


def test_the_official_md5_test_vector():
    assert wxpay.sign(VECTOR, VECTOR_KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"


def test_the_official_hmac_sha256_test_vector():
    assert wxpay.sign(VECTOR, VECTOR_KEY, wxpay.HMAC_SHA256) == (
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
    )


def test_it_signs_like_wechatpy_and_skips_empty_values_and_sign():
    params = {**VECTOR, "attach": "", "total_fee": "1", "sign": "ignored", "中文": "值"}
    expected_params = {k: v for k, v in params.items() if k != "sign"}
    assert wxpay.sign(params, VECTOR_KEY) == calculate_signature(expected_params, VECTOR_KEY)
    assert wxpay.sign(params, VECTOR_KEY, wxpay.HMAC_SHA256) == calculate_signature_hmac(expected_params, VECTOR_KEY)


def test_verify_accepts_the_right_sign_and_refuses_a_tampered_twin():
    signed = {**VECTOR, "sign": "9A0A8659F005D6984697E2CA0A9CF3B7"}
    assert wxpay.verify(signed, VECTOR_KEY)
    assert not wxpay.verify({**signed, "body": "test2"}, VECTOR_KEY)
    assert not wxpay.verify({**signed, "sign": ""}, VECTOR_KEY)
    assert not wxpay.verify(signed, VECTOR_KEY, "SHA1")


def test_xml_round_trips_with_cdata_and_numbers():
    fields = {"return_code": "SUCCESS", "total_fee": "1990", "body": "充值 <10> & ]]> 结束"}
    assert wxpay.parse_xml(wxpay.to_xml(fields)) == fields


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"   ", "empty body"),
        (b"not xml at all", "not valid XML"),
        (b"<xml><a>1</a>", "not valid XML"),
        ("<xml><body>充值</body></xml>".encode("gbk"), "not UTF-8"),
        (b"<root><a>1</a></root>", "root is not <xml>"),
        (b"<xml><a><b>1</b></a></xml>", "nested element"),
        (b"<xml><total_fee>1</total_fee><total_fee>100</total_fee></xml>", "repeated field"),
        (b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><a>&x;</a></xml>', "not valid XML"),
        (b'<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><xml><a>&b;</a></xml>', "not valid XML"),
        (b"<xml><a>" + b"x" * (70 * 1024) + b"</a></xml>", "body too large"),
    ],
)
def test_untrusted_xml_is_refused(body, reason):
    with pytest.raises(wxpay.XMLError, match=reason):
        wxpay.parse_xml(body)


def test_req_info_round_trips_and_wechatpy_decrypts_it():
    key = "sandboxkey0123456789abcdefghijklm"
    plaintext = wxpay.to_xml({"out_refund_no": "R1", "refund_fee": "100"}, root="root")
    req_info = wxpay.encrypt_req_info(plaintext, key)
    assert wxpay.decrypt_req_info(req_info, key) == {"out_refund_no": "R1", "refund_fee": "100"}
    outer = wxpay.to_xml({"appid": "wx1", "mch_id": "1", "req_info": req_info})
    assert WeChatRefundCrypto(key).decrypt_message(outer, "wx1", "1")["out_refund_no"] == "R1"


@pytest.mark.parametrize("req_info", ["", "not base64!", "QUJD", "A" * 44])
def test_a_req_info_that_does_not_decrypt_is_refused(req_info):
    with pytest.raises(wxpay.XMLError):
        wxpay.decrypt_req_info(req_info, "sandboxkey0123456789abcdefghijklm")
