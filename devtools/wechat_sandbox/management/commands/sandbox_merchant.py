"""Set up the sandbox's merchant side (its counter's API client, its webhook receiver's
endpoint) before anything happens, so that the first recharge is announced to it too."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from devtools.wechat_sandbox import counter


class Command(BaseCommand):
    help = "Make the sandbox counter's API client and its webhook receiver's endpoint (once)."

    def handle(self, **options):
        counter.api_key()
        counter.webhook_secret()
        self.stdout.write(f"sandbox counter: /sandbox/pos/; webhooks received at {counter.receiver_url()}")
