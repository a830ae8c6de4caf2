from django.conf import settings


def site(request):
    return {"wechat_sandbox": settings.WECHAT_SANDBOX}
