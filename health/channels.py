"""Where alerts go: a 企业微信 group robot (ALERT_WECOM_WEBHOOK) and e-mail to ADMINS.

The robot's URL carries its secret (`…/cgi-bin/webhook/send?key=…`): whoever has it may post
to the group. It is never logged, stored or shown; the panel shows its last four characters
at most (`wecom_hint`), and every error text goes through `common.redact` with the key named.

Each send has a short timeout and answers an error text ("" when it went): a channel that is
down is recorded on the alert and shown on the panel, and the site goes on.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import requests
from django.conf import settings
from django.core.mail import mail_admins

from common.redact import describe, redact
from common.wechat import SITE_URL_PLACEHOLDER

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
WECOM = "企业微信群机器人"
MAIL = "邮件"
# The robot takes at most 4096 bytes of markdown (its API document, "markdown类型").
WECOM_MARKDOWN_BYTES = 4096


def configured() -> list[str]:
    """The channels set up, by their Chinese names."""
    found = []
    if settings.ALERT_WECOM_WEBHOOK:
        found.append(WECOM)
    if settings.ADMINS:
        found.append(MAIL)
    return found


def _wecom_key() -> str:
    url = settings.ALERT_WECOM_WEBHOOK
    return parse_qs(urlsplit(url).query).get("key", [""])[0]


def wecom_hint() -> str:
    """How the panel names the robot: configured, and which key (its last 4 characters)."""
    if not settings.ALERT_WECOM_WEBHOOK:
        return "未配置"
    key = _wecom_key()
    return f"已配置（key 末 4 位 {key[-4:]}）" if len(key) >= 12 else "已配置"


def send(title: str, text: str, url: str = "") -> dict[str, str]:
    """Send one alert on every configured channel: {channel: error text, "" when sent}.
    `url` is the admin page to look at (a link in the robot's message, a line in the mail)."""
    results = {}
    if settings.ALERT_WECOM_WEBHOOK:
        results[WECOM] = send_wecom(title, text, url)
    if settings.ADMINS:
        results[MAIL] = send_mail(title, f"{text}\n\n在运营后台查看：{url}" if url else text)
    return results


def send_wecom(title: str, text: str, url: str = "") -> str:
    """POST the alert to the group robot as markdown; "" when it answered errcode 0."""
    link = f"\n[在运营后台查看]({url})" if url else ""
    content = _fit(f'<font color="warning">**{title}**</font>\n{text}', WECOM_MARKDOWN_BYTES - len(link.encode())) + link
    key = _wecom_key()
    try:
        response = requests.post(
            settings.ALERT_WECOM_WEBHOOK.replace(SITE_URL_PLACEHOLDER, settings.SITE_URL),
            json={"msgtype": "markdown", "markdown": {"content": content}},
            timeout=TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.Timeout:
        error = f"超时（{TIMEOUT_SECONDS:g} 秒）"
    except requests.RequestException as exc:
        error = describe(exc, key)
    else:
        error = _wecom_answer(response, key)
    if error:
        logger.warning("alert: the WeCom robot failed: %s", error)
    return error


def _wecom_answer(response: requests.Response, key: str) -> str:
    """The robot's answer as an error text: HTTP status, or its errcode and errmsg."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    try:
        answer = response.json()
        errcode = int(answer.get("errcode", -1))
    except (ValueError, AttributeError, TypeError):
        return redact(f"应答不是 JSON：{response.text[:100]}", key)
    if errcode == 0:
        return ""
    return redact(f"errcode {errcode}: {answer.get('errmsg', '')}", key)


def send_mail(title: str, text: str) -> str:
    """E-mail the alert to ADMINS through Django's mail (EMAIL_URL); "" when handed over."""
    try:
        mail_admins(title, text, fail_silently=False)
    except Exception as exc:  # SMTP, DNS, a refused login: any of them is this channel failing
        error = describe(exc, settings.EMAIL_HOST_PASSWORD)
        logger.warning("alert: e-mail to ADMINS failed: %s", error)
        return error
    return ""


def _fit(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, cut at a character."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "…"
