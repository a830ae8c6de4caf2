from django.conf import settings

from common.support import support


def site(request):
    return {"wechat_sandbox": settings.WECHAT_SANDBOX, "support": support()}
