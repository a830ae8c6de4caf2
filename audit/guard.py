"""The database refuses to change or remove audit rows (docs/operations.md#操作审计): a trigger
on the table, installed after every migrate (on a database built from the models too, as the
tests' are). The admin offers neither change nor delete, and the model refuses both; the
trigger stops what goes around them (a raw UPDATE, a queryset's update() or delete()).

PostgreSQL: UPDATE and DELETE raise, except DELETE in a session that set
`wxrecharge.audit_purge` to on (how a retention purge, or the test suite's flush, empties it
on purpose). SQLite: UPDATE raises (its flush deletes rows, and SQLite has no session setting
to tell a purge from a mistake)."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections

TABLE = "audit_auditentry"

POSTGRESQL = [
    """
    CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'DELETE' AND current_setting('wxrecharge.audit_purge', true) = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql
    """,
    f"DROP TRIGGER IF EXISTS audit_append_only ON {TABLE}",
    f"CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON {TABLE} FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
]
SQLITE = [
    f"""
    CREATE TRIGGER IF NOT EXISTS audit_append_only BEFORE UPDATE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE refused'); END
    """,
]


def install(sender=None, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    connection = connections[using]
    if TABLE not in connection.introspection.table_names():
        return
    statements = {"postgresql": POSTGRESQL, "sqlite": SQLITE}.get(connection.vendor, [])
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
