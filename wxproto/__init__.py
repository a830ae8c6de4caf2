"""WeChat Pay's protocol, without Django: what WeChat's messages look like and how they are
signed, verified and read. The project's apps build on it; it imports none of them.

- `v2`: API v2's XML, MD5/HMAC-SHA256 signatures and the refund notify's req_info
  (docs/wechat-pay-v2.md); the calls are signed with wechatpy's public functions
  (payments/wechat.py);
- `v3`: our API v3 client on cryptography and requests (docs/wechat-pay-v3.md);
- `bill`: the trade bill's format, read and verified (docs/wechat-bills.md);
- `amounts`: WeChat's amounts, fen and yuan text; `beijing`: WeChat's clock (UTC+8).
"""
