"""ORM queries compiled to SQL once, then sent with new values: the hot paths' statements.

Building a query with the ORM costs more CPU than sending it (a row-locking SELECT: about
0.2 ms of query building for a 0.05 ms statement; see bench/notify_vs_baseline.py).
A `Statement` is written with the ORM's own query API (`filter`, `select_for_update`,
`values_list`, `update` values with `F()`), so its SQL follows every field and table
change as any other query does; it is compiled on its first use for each database
connection and kept, and each later call only prepares its values (the field's own
`get_db_prep_save`, exactly what the ORM does) and executes.

The variable parts are `Param`s, named and typed by a model field:

    LOCK = Statement.select(
        RechargeOrder,
        lambda p: RechargeOrder.objects.select_for_update().filter(pk=p("id")).values_list("status", "amount"),
    )
    status, amount = LOCK.one(id=order_id)

Anything else in the query is a constant of the compiled statement. Inserts take their
values as given (no `auto_now`/`default` at run time: the caller passes every field).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, cast

from django.db import DEFAULT_DB_ALIAS, connections, models, router
from django.db.models.expressions import Expression
from django.db.models.sql import InsertQuery, UpdateQuery

_INTEGERS = (
    "AutoField",
    "BigAutoField",
    "SmallAutoField",
    "IntegerField",
    "BigIntegerField",
    "SmallIntegerField",
    "PositiveIntegerField",
    "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
)
_PLAIN: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(_INTEGERS, (int,)),
    "CharField": (str,),
    "TextField": (str,),
    "BooleanField": (bool,),
}


class Param(Expression):
    """A named value of a compiled statement, prepared at each call as `field` prepares it."""

    def __init__(self, name: str, field: models.Field):
        super().__init__(output_field=field)
        self.name, self.target = name, field
        # Values the field sends as they are (an int to an integer column, a str to a text
        # one, None to any of them): the ORM's preparation would hand back the same object.
        target = cast(models.ForeignKey, field).target_field if field.is_relation else field
        self.kind = target.get_internal_type()
        self.plain: tuple[type, ...] = (type(None), *_PLAIN.get(self.kind, ()))
        # What these fields prepare depends on the value's type alone: a type the ORM hands
        # back unchanged once (a str enum's member to a text column) is sent as it is from then on.
        self.learns = self.kind in _PLAIN
        # A timezone-aware datetime that the connection's backend sends as it is (PostgreSQL):
        # a naive one still goes through the field, with its warning.
        self.aware = False

    def compiled_for(self, connection) -> None:
        """What the backend of the connection it was compiled for sends as it is, besides `plain`."""
        if self.kind == "DateTimeField":
            probe = datetime.now(UTC)
            self.aware = connection.ops.adapt_datetimefield_value(probe) is probe
        elif self.kind == "BinaryField" and connection.vendor == "postgresql":
            # psycopg writes bytes as the same bytea literal with or without the ORM's psycopg.Binary.
            self.plain = (*self.plain, bytes)

    def prepare(self, value, connection):
        """What the ORM sends for `value` (a model instance: its key)."""
        if self.aware and type(value) is datetime and value.utcoffset() is not None:
            return value
        if isinstance(value, models.Model):
            value = value.prepare_database_save(self.target)
        prepared = self.target.get_db_prep_save(value, connection)
        if self.learns and prepared is value:
            self.plain = (*self.plain, type(value))
        return prepared

    def as_sql(self, compiler, connection):
        return "%s", [self]

    def resolve_expression(self, *args, **kwargs):
        return self  # the compiled params must hold this very object, not a copy

    def __repr__(self) -> str:
        return f"Param({self.name!r})"


class Statement:
    """One query, compiled per database connection on first use (see the module's doc)."""

    def __init__(self, model: type[models.Model], kind: str, build: Callable[[Callable[..., Param]], Any]):
        self.model, self.kind, self.build = model, kind, build
        self._compiled: dict[tuple[str, str], tuple[str, list, list]] = {}

    @classmethod
    def select(cls, model: type[models.Model], build: Callable[[Callable[..., Param]], models.QuerySet]) -> Statement:
        """`build(p)` returns a queryset (usually `values_list`); rows come back as tuples."""
        return cls(model, "select", build)

    @classmethod
    def update(
        cls, model: type[models.Model], build: Callable[[Callable[..., Param]], tuple[models.QuerySet, dict]]
    ) -> Statement:
        """`build(p)` returns (queryset, values) as for `queryset.update(**values)`."""
        return cls(model, "update", build)

    @classmethod
    def update_by_pk(cls, model: type[models.Model], names: Iterable[str]) -> Statement:
        """UPDATE the named fields of one row, found by its primary key (`pk=`)."""
        names = tuple(names)
        return cls.update(model, lambda p: (model._base_manager.filter(pk=p("pk")), {n: p(n) for n in names}))

    @classmethod
    def insert(cls, model: type[models.Model], names: Iterable[str], constants: dict[str, Any] | None = None) -> Statement:
        """INSERT the named fields, and `constants` (the same in every row); `run(**values)`
        returns the new primary key."""
        names, fixed = tuple(names), dict(constants or {})
        return cls(model, "insert", lambda p: {**fixed, **{n: p(n) for n in names}})

    # -- running -------------------------------------------------------------------------
    def _param(self, name: str, field_name: str | None = None) -> Param:
        meta = self.model._meta
        field = meta.pk if (field_name or name) == "pk" else meta.get_field(field_name or name)
        return Param(name, cast(models.Field, field))

    def _compile(self, connection) -> tuple[str, list, list]:
        alias = connection.alias
        if self.kind == "select":
            compiler = self.build(self._param).query.get_compiler(using=alias)
            sql, params = compiler.as_sql()
            converters = compiler.get_converters([col for col, _, _ in compiler.select[: compiler.col_count]])
            return sql, list(params), list(converters.items())
        if self.kind == "update":
            queryset, values = self.build(self._param)
            query = queryset.query.chain(UpdateQuery)
            query.add_update_values(values)
            sql, params = query.get_compiler(using=alias).as_sql()
            return sql, list(params), []
        values = self.build(self._param)
        meta = self.model._meta
        fields = [cast(models.Field, meta.get_field(name)) for name in values]
        query = InsertQuery(self.model)
        query.insert_values(fields, [self.model(**{f.attname: values[f.name] for f in fields})], raw=True)
        compiler = query.get_compiler(using=alias)
        compiler.returning_fields = [meta.pk]
        [(sql, params)] = compiler.as_sql()
        return sql, list(params), []

    def _for(self, connection) -> tuple[str, list, list]:
        """The statement compiled for `connection`: SQL, slots (Params and constants), converters."""
        key = (connection.alias, connection.vendor)
        compiled = self._compiled.get(key)
        if compiled is None:
            sql, slots, converters = self._compile(connection)
            if connection.vendor == "postgresql":
                sql, slots = _write_in(sql, slots, connection)
            for slot in slots:
                if isinstance(slot, Param):
                    slot.compiled_for(connection)
            compiled = self._compiled[key] = (sql, slots, converters)
        return compiled

    def compiled(self, using: str | None = None) -> tuple[str, list]:
        """The SQL and its parameter slots (Params and constants) for a connection."""
        sql, slots, _ = self._for(connections[using or router.db_for_write(self.model)])
        return sql, slots

    def _execute(self, values: dict[str, Any], using: str | None):
        connection = connections[using or (router.db_for_write(self.model) if router.routers else DEFAULT_DB_ALIAS)]
        sql, slots, converters = self._compiled.get((connection.alias, connection.vendor)) or self._for(connection)
        params = [
            (value if type(value := values[slot.name]) in slot.plain else slot.prepare(value, connection))
            if isinstance(slot, Param)
            else slot
            for slot in slots
        ]
        cursor, owned = _cursor(connection)
        try:
            cursor.execute(sql, params)
        except BaseException:
            if owned:
                cursor.close()
            raise
        return connection, cursor, converters, owned

    def rows(self, using: str | None = None, **values) -> list[tuple]:
        connection, cursor, converters, owned = self._execute(values, using)
        try:
            rows = cursor.fetchall()
        finally:
            if owned:
                cursor.close()
        if converters:
            return [tuple(_convert(row, converters, connection)) for row in rows]
        return [row if type(row) is tuple else tuple(row) for row in rows]

    def one(self, using: str | None = None, **values) -> tuple | None:
        """The first row, or None."""
        rows = self.rows(using, **values)
        return rows[0] if rows else None

    def run(self, using: str | None = None, **values) -> int:
        """Execute an update; the number of rows it changed. An insert: its new primary key."""
        connection, cursor, _, owned = self._execute(values, using)
        try:
            if self.kind != "insert":
                return cursor.rowcount
            if connection.features.can_return_columns_from_insert:
                return cursor.fetchone()[0]
            return connection.ops.last_insert_id(cursor, self.model._meta.db_table, self.model._meta.pk.column)
        finally:
            if owned:
                cursor.close()


# The cursor a PostgreSQL connection keeps for the statements: (the DB-API connection it
# belongs to, Django's cursor on it, the time zone its datetimes are read in).
_KEPT_CURSOR = "_statements_cursor"


def _cursor(connection) -> tuple[Any, bool]:
    """A cursor to send a statement with, and whether the caller must close it.

    Making a cursor (Django's wrapper, psycopg's cursor and its time-zone loader) costs about
    what sending a short statement does, and a notify sends nine: a PostgreSQL connection
    keeps one for its statements (taken as it is while the
    connection and its request's health check stand), made again with each new connection,
    after the same health check as Django's own. Django's cursor, made and closed each time,
    wherever a kept one would change what is seen or shared: queries being logged (DEBUG, a
    test counting them), a connection shared between threads (a test's live server), SQLite
    (whose cursor holds its statement until reset).
    """
    if connection.queries_logged or connection.allow_thread_sharing:
        return connection.cursor(), True
    kept = connection.__dict__.get(_KEPT_CURSOR)
    if (
        kept is not None
        and kept[0] is connection.connection
        and kept[2] is connection.timezone
        # Django's own flags: this request's check has been made.
        and (connection.health_check_done or not connection.health_check_enabled)
    ):
        return kept[1], False
    if connection.vendor != "postgresql":
        return connection.cursor(), True
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    if kept is None or kept[0] is not connection.connection or kept[2] is not connection.timezone:
        kept = (connection.connection, connection.cursor(), connection.timezone)
        setattr(connection, _KEPT_CURSOR, kept)
    return kept[1], False


_PLACEHOLDER = re.compile("%%|%s")


def _write_in(sql: str, slots: list, connection) -> tuple[str, list]:
    """The statement with its constants written into the SQL, and the slots left (Params).

    Django binds values on the client for PostgreSQL: the server is sent the SQL with every
    value written in by psycopg, at each call. A constant is written in once, the same way
    (`compose_sql`), so that each call writes only its own values."""
    if _PLACEHOLDER.findall(sql).count("%s") != len(slots):
        raise ValueError(f"{len(slots)} values for the placeholders of {sql!r}")
    values = iter(slots)

    def fill(match: re.Match) -> str:
        if match.group() == "%%":
            return "%%"
        slot = next(values)
        if isinstance(slot, Param):
            return "%s"
        return connection.ops.compose_sql("%s", [slot]).replace("%", "%%")

    return _PLACEHOLDER.sub(fill, sql), [slot for slot in slots if isinstance(slot, Param)]


def _convert(row, converters, connection) -> list:
    row = list(row)
    for index, (funcs, expression) in converters:
        value = row[index]
        for func in funcs:
            value = func(value, expression, connection)
        row[index] = value
    return row
