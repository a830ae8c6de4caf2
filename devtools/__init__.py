"""Development tools, outside the product: the WeChat sandbox (wechat_sandbox/) and the settings
and URLs that add it to the site (settings.py, urls.py). Production never imports this package."""
