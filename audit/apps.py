from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "操作审计"

    def ready(self) -> None:
        from audit import guard, signals  # noqa: F401  (signals: sign-ins and permission changes)

        # The database's own guard, on a migrated database and on one built from the models alike.
        post_migrate.connect(guard.install, sender=self)
