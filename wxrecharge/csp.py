"""Content-Security-Policy: pages run only scripts and styles served by this site.

No page has an inline script, style or event handler (everything is in static/), so the
policy needs no 'unsafe-inline' and no nonce; Django's admin (5.2) needs none either. Checked
in Chromium (tests/browser/test_order_page.py) on our pages, the sandbox's cashier and
dashboard, and the admin.
"""

from __future__ import annotations

from django.conf import settings

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    # WeUI draws its icons with data: SVG masks; the QR code is inline SVG markup (no fetch).
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
    # No form-action: a sign-in form's redirect chain goes on to WeChat's 网页授权
    # (open.weixin.qq.com), and Chrome applies form-action to every redirect of a form post.
}
POLICY_HEADER = "; ".join(f"{name} {value}" for name, value in POLICY.items())


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        # Django's debug pages (a 404 or 500 under DEBUG) are made of inline styles and scripts.
        if settings.DEBUG and response.status_code >= 400:
            return response
        response.headers.setdefault("Content-Security-Policy", POLICY_HEADER)
        return response
