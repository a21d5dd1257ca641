"""``driftscope query SQL``: read the metrics, data (D) and model (M) databases.

Read-only is the store's business, not ours: a ClickHouse server gets ``readonly=1`` with the
session, chDB opens a ``readonly=1`` session, so a write is refused by ClickHouse itself whatever
the SQL looks like. Exit codes: 0 rows printed; 1 the store refused the statement; 3 no store.
"""

from __future__ import annotations

import csv
import json
import sys
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from driftscope.commands.clients import ExitCode, Unavailable, open_reader, resolve_settings

if TYPE_CHECKING:
    from consumers.store import Row

__all__ = ["OutputFormat", "jsonable", "query"]

stdout = Console()
stderr = Console(stderr=True)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def jsonable(value: Any) -> Any:
    """A value as JSON can hold it: times as ISO 8601, UUIDs as text, arrays as lists."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    converted = jsonable(value)
    return json.dumps(converted) if isinstance(converted, list | dict) else str(converted)


def _columns(rows: Sequence[Row]) -> list[str]:
    return list(rows[0]) if rows else []


def query(
    sql: Annotated[str, typer.Argument(help="one SQL statement; '-' reads it from stdin", show_default=False)],
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="table, csv or json")] = OutputFormat.table,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array of row objects (as -f json)")] = False,
    home: Annotated[
        Path | None, typer.Option("--home", help="state directory (default: $DRIFTSCOPE_HOME)", show_default=False)
    ] = None,
) -> None:
    """Run a read-only SQL query on the store and print the rows as a table, CSV or JSON.

    The store refuses writes itself (ClickHouse readonly=1). With the embedded store, a running stack's worker must
    serve queries (driftscope worker --web); a ClickHouse server is queried directly.

    Example: driftscope query "SELECT instrument_id, count() AS images FROM images FINAL GROUP BY instrument_id"

    Example: driftscope query --json "SELECT * FROM drift_events FINAL ORDER BY detected_at DESC LIMIT 5" | jq .
    """
    from consumers.store import StoreError, StoreUnavailable

    statement = sys.stdin.read() if sql == "-" else sql
    if not statement.strip():
        stderr.print("[red]error:[/red] empty SQL statement")
        raise typer.Exit(int(ExitCode.USAGE))
    try:
        reader = open_reader(resolve_settings(home))
    except Unavailable as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.UNAVAILABLE)) from None
    try:
        rows = reader.query(statement)
    except (StoreUnavailable, Unavailable) as exc:
        stderr.print(f"[red]error:[/red] the store is not available: {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.UNAVAILABLE)) from None
    except StoreError as exc:
        stderr.print(f"[red]query refused:[/red] {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.FAILED)) from None
    finally:
        reader.close()
    _print(rows, OutputFormat.json if as_json else output)


def _print(rows: list[Row], output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print(json.dumps([{k: jsonable(v) for k, v in row.items()} for row in rows]))
    elif output is OutputFormat.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(_columns(rows))
        writer.writerows([_cell(v) for v in row.values()] for row in rows)
    else:
        table = Table(*_columns(rows), show_lines=False)
        for row in rows:
            table.add_row(*(_cell(v) for v in row.values()))
        stdout.print(table)
        stderr.print(f"{len(rows)} rows", highlight=False)
