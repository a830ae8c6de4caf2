"""Set up the message templates a development site uses (DEMO_MESSAGE_TEMPLATES: the
sandbox's settings name its accounts' templates), so that `make run` sends messages from the
first recharge. Templates an operator already set are left as they are."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from messaging.models import MessageTemplate


class Command(BaseCommand):
    help = "Add the templates of DEMO_MESSAGE_TEMPLATES that are not set yet (development)."

    def handle(self, *args, **options):
        added = 0
        for spec in getattr(settings, "DEMO_MESSAGE_TEMPLATES", []):
            if MessageTemplate.objects.filter(channel=spec["channel"], kind=spec["kind"]).exists():
                continue
            template = MessageTemplate(**spec)
            template.full_clean()
            template.save()
            added += 1
        self.stdout.write(f"消息模板：新增 {added} 个")
