"""ClickHouse DDL for deployments, derived from the store's own migrations.

``consumers.store.migrations`` is the one source of the schema. Deployments need it in two other
shapes, and both are rendered from it here so they cannot drift apart:

* :func:`single_node_sql` — one file for the official ClickHouse image's
  ``/docker-entrypoint-initdb.d``: the migrations' statements qualified with the database, plus
  their ``schema_migrations`` records, so a worker's ``migrate()`` at start finds nothing to do
  (and several worker replicas never race to create the schema).
* :func:`cluster_sql` — production on a ClickHouse cluster: each table becomes a
  ``Replicated*MergeTree`` table ``<name>_local`` on every node plus a ``Distributed`` table
  ``<name>`` over them, so the application's SQL (which names ``images``, ``predictions``, ...)
  runs unchanged. Rows are sharded by a hash of the table's sorting key: all versions of one row
  land on one shard, which is what lets ReplacingMergeTree (and ``FINAL``) deduplicate them.
  High-volume tables get a TTL (retention); provenance (labels, runs, models) is kept.

A migration statement this module cannot translate raises :class:`UntranslatableMigration`, so a
new kind of migration fails the deploy tests instead of silently missing from production.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from consumers.store import migrations as store_migrations
from consumers.store.migrations import MIGRATIONS, Migration

__all__ = [
    "DATABASE",
    "RETENTION",
    "TableDDL",
    "UntranslatableMigration",
    "cluster_sql",
    "schema_tables",
    "single_node_sql",
]

DATABASE = "driftscope"

#: production retention: table -> (time column, days). Tables not named here keep rows forever.
RETENTION: Mapping[str, tuple[str, int]] = {
    "images": ("acquired_at", 365),
    "fingerprints": ("acquired_at", 365),
    "predictions": ("acquired_at", 365),
    "objects": ("acquired_at", 365),
    "drift_events": ("detected_at", 730),
}

_CREATE = re.compile(
    r"^\s*CREATE TABLE IF NOT EXISTS (?P<name>\w+) \((?P<columns>.*)\)\s*"
    r"ENGINE = (?P<engine>\w+)\((?P<engine_args>[^)]*)\)(?P<tail>.*)$",
    re.DOTALL,
)
_ORDER_BY = re.compile(r"ORDER BY (?P<key>\([^)]*\)|\w+)\s*$")
_ALTER_TTL = re.compile(r"^\s*ALTER TABLE (?P<name>\w+) MODIFY TTL (?P<ttl>.+?)\s*$", re.DOTALL)


class UntranslatableMigration(ValueError):
    """A migration statement has a shape this renderer does not know; teach :mod:`deploy.ddl` it."""


@dataclass(frozen=True)
class TableDDL:
    """One table of the schema, taken apart: enough to render it for any deployment."""

    name: str
    columns: str
    engine: str
    engine_args: str
    tail: str
    sort_key: tuple[str, ...]
    ttl: str | None = None

    def create(self, database: str) -> str:
        """The single-node CREATE, qualified with ``database``."""
        return (
            f"CREATE TABLE IF NOT EXISTS {database}.{self.name} ({self.columns})\n"
            f"ENGINE = {self.engine}({self.engine_args}){self.tail.rstrip()}"
        )


def _parse_create(sql: str) -> TableDDL:
    match = _CREATE.match(sql)
    if match is None:
        raise UntranslatableMigration(f"not a CREATE TABLE IF NOT EXISTS ... ENGINE = ...: {sql.strip()[:80]}")
    order = _ORDER_BY.search(match["tail"])
    if order is None:
        raise UntranslatableMigration(f"table {match['name']} has no trailing ORDER BY")
    key = order["key"].strip("()")
    return TableDDL(
        name=match["name"],
        columns=match["columns"],
        engine=match["engine"],
        engine_args=match["engine_args"],
        tail=match["tail"],
        sort_key=tuple(part.strip() for part in key.split(",")),
    )


def schema_tables(migrations: Iterable[Migration] = MIGRATIONS) -> list[TableDDL]:
    """Every table the migrations end up with (``schema_migrations`` first), TTLs folded in."""
    tables = {"schema_migrations": _parse_create(store_migrations._SCHEMA_MIGRATIONS)}
    for migration in migrations:
        for statement in migration.statements:
            if (alter := _ALTER_TTL.match(statement)) is not None:
                name = alter["name"]
                if name not in tables:
                    raise UntranslatableMigration(f"TTL for unknown table {name} in migration {migration.version}")
                tables[name] = replace(tables[name], ttl=alter["ttl"])
            else:
                table = _parse_create(statement)
                tables[table.name] = table
    return list(tables.values())


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _records(database: str, migrations: Iterable[Migration]) -> str:
    # INSERT ... SELECT rather than inline VALUES: any client, the store's execute() included, runs it
    rows = "\nUNION ALL ".join(
        f"SELECT toUInt32({m.version}), {_quote(m.name)}, now()" for m in migrations
    )
    return f"INSERT INTO {database}.schema_migrations (version, name, applied_at)\n{rows}"


def _script(header: str, statements: Iterable[str]) -> str:
    return header + "".join(f"\n{statement.strip()};\n" for statement in statements)


_GENERATED = "-- Generated by `python -m deploy.generate` from consumers/store/migrations.py: do not edit.\n"


def single_node_sql(database: str = DATABASE, migrations: tuple[Migration, ...] = MIGRATIONS) -> str:
    """The init script for one ClickHouse server (docker-compose): schema plus migration records."""
    statements = [f"CREATE DATABASE IF NOT EXISTS {database}"]
    for table in schema_tables(migrations):
        statements.append(table.create(database))
        if table.ttl is not None:
            statements.append(f"ALTER TABLE {database}.{table.name} MODIFY TTL {table.ttl}")
    statements.append(_records(database, migrations))
    return _script(
        _GENERATED + "-- Single-node schema for the official clickhouse-server image (docker-entrypoint-initdb.d).\n",
        statements,
    )


def _retention(table: TableDDL, retention: Mapping[str, tuple[str, int]]) -> str | None:
    if table.name in retention:
        column, days = retention[table.name]
        return f"{column} + INTERVAL {days} DAY"
    return table.ttl


def cluster_sql(
    database: str = DATABASE,
    cluster: str = "{cluster}",
    migrations: tuple[Migration, ...] = MIGRATIONS,
    retention: Mapping[str, tuple[str, int]] = RETENTION,
) -> str:
    """The production schema: replicated local tables, Distributed tables over them, retention TTLs.

    ``cluster`` defaults to the ``{cluster}`` macro, and replica paths use ``{shard}`` and
    ``{replica}``, so one file serves every node: each node's macros fill them in.
    """
    on_cluster = f"ON CLUSTER {_quote(cluster)}"
    statements = [f"CREATE DATABASE IF NOT EXISTS {database} {on_cluster}"]
    for table in schema_tables(migrations):
        local = f"{table.name}_local"
        path = _quote(f"/clickhouse/tables/{{shard}}/{database}/{local}")
        args = ", ".join(part for part in (path, "'{replica}'", table.engine_args) if part)
        ttl = _retention(table, retention)
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {database}.{local} {on_cluster} ({table.columns})\n"
            f"ENGINE = Replicated{table.engine}({args}){table.tail.rstrip()}"
            + (f"\nTTL {ttl}" if ttl else "")
        )
        shard_key = f"cityHash64({', '.join(table.sort_key)})"
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {database}.{table.name} {on_cluster} AS {database}.{local}\n"
            f"ENGINE = Distributed({_quote(cluster)}, {database}, {local}, {shard_key})"
        )
    statements.append(_records(database, migrations))
    return _script(
        _GENERATED
        + "-- Production schema for a ClickHouse cluster: ReplicatedMergeTree tables <name>_local on every\n"
        "-- node, Distributed tables <name> over them (sharded by the sorting key), retention TTLs.\n"
        "-- Needs the macros {cluster}, {shard} and {replica} on every node and ClickHouse Keeper.\n",
        statements,
    )
