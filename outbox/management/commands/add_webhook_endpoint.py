"""Add a webhook endpoint and print its signing secret, once."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from outbox.models import EVENT_TYPES, WebhookEndpoint


class Command(BaseCommand):
    help = "Add a webhook endpoint (docs/webhooks.md) and print its signing secret once."

    def add_arguments(self, parser):
        parser.add_argument("url")
        parser.add_argument("--events", required=True, help=f"comma-separated, from: {', '.join(EVENT_TYPES)}")
        parser.add_argument("--description", default="")

    def handle(self, url, events, description, **options):
        try:
            endpoint = WebhookEndpoint.add(url, [e.strip() for e in events.split(",") if e.strip()], description)
        except ValidationError as exc:
            raise CommandError("; ".join(m for messages in exc.message_dict.values() for m in messages)) from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"webhook endpoint {endpoint.pk} {endpoint.url}: {', '.join(endpoint.events)}")
        self.stderr.write("Its signing secret follows, shown this once:")
        self.stdout.write(endpoint.secret)
