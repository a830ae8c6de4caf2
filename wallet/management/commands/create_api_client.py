"""Make an API client for the merchant API and print its secret key, once."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from wallet.models import ApiClient


class Command(BaseCommand):
    help = "Create a merchant API client (docs/merchant-api.md) and print its secret key once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="what the client is, e.g. 一号店收银")
        parser.add_argument(
            "--scopes",
            required=True,
            help=f"comma-separated, from: {', '.join(ApiClient.SCOPES)}",
        )
        parser.add_argument("--store", default="", help="the store its charges are recorded under")

    def handle(self, name, scopes, store, **options):
        try:
            client, secret = ApiClient.issue(name, [s.strip() for s in scopes.split(",") if s.strip()], store=store)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"API client {client.pk} {client.name!r}: scopes {', '.join(client.scopes)}")
        self.stderr.write("Its secret key follows, shown this once (only its digest is kept):")
        self.stdout.write(secret)
