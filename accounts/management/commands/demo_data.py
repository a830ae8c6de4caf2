from __future__ import annotations

from django.core.management.base import BaseCommand

from accounts.models import User

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "wxrecharge-demo"


class Command(BaseCommand):
    help = "Create the demo user of `make run` (idempotent) and print how to sign in."

    def handle(self, *args, **options):
        user, created = User.objects.get_or_create(username=DEMO_USERNAME)
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        self.stdout.write(
            f"Demo user {'created' if created else 'exists'}: username {DEMO_USERNAME!r}, password {DEMO_PASSWORD!r}"
        )
