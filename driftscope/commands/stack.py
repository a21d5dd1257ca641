"""``driftscope stack up|down|status``: the embedded local stack (Tansu broker, topics, chDB, blobs).

Example::

    driftscope stack up --json --home /tmp/ds &     # prints one JSON line, keeps running
    driftscope stack status --home /tmp/ds
    driftscope stack down --home /tmp/ds
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from driftscope.kafka_admin import TopicSetupError
from driftscope.settings import load_settings
from driftscope.stack import (
    StackError,
    StackInfo,
    find_running_stack,
    run_stack,
    start_detached,
    stop_running_stack,
)
from driftscope.supervisor import ChildFailed
from driftscope.tansu import TansuError

__all__ = ["app"]

app = typer.Typer(name="stack", help="Run the embedded local stack: broker, topics, store, blobs.\n\n"
                  "Example: driftscope stack up --detach",
                  no_args_is_help=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="state directory (default: $DRIFTSCOPE_HOME or ~/.driftscope)", show_default=False),
]


def _home(home: Path | None) -> Path:
    return load_settings(home=home).home.resolve()


def _describe(info: StackInfo, *, foreground: bool = False) -> str:
    home = Path(info.home)
    stop = "Ctrl-C or: " if foreground else ""
    return "\n".join([
        f"driftscope stack running (pid {info.pid}) in {home}",
        f"  kafka       {info.bootstrap_servers}  (Tansu, memory storage; log {home / 'tansu' / 'tansu.log'})",
        f"  clickhouse  {info.clickhouse_url}",
        f"  blobs       {info.blob_url}",
        f"  state       {home / 'stack.json'}, log {home / 'stack.log'}",
        f"Stop it with {stop}driftscope stack down --home {home}",
    ])  # fmt: skip


def _log_to(path: Path) -> None:
    """Log to stderr and to ``<home>/stack.log`` (stdout stays clean for ``--json``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr), logging.FileHandler(path)]
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(logging.INFO)


@app.command("up")
def up(
    home: HomeOption = None,
    port: Annotated[int | None, typer.Option(help="broker port on 127.0.0.1 (default: a free one)")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print one JSON line with the connection details, nothing else")
    ] = False,
    no_workers: Annotated[
        bool,
        typer.Option("--no-workers", help="start only broker, topics, store and blobs (no worker, no trainer)"),
    ] = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="start the stack in the background and return once it is ready")
    ] = False,
) -> None:
    """Start the stack and keep it running until Ctrl-C, SIGTERM or `stack down`.

    Example: driftscope stack up --json
    """
    settings = load_settings(home=home)
    if detach:
        try:
            info = start_detached(settings.home, broker_port=port, workers=not no_workers)
        except StackError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        print(json.dumps(info.public()) if as_json else _describe(info), flush=True)
        return
    _log_to(settings.home.resolve() / "stack.log")

    def announce(info: StackInfo) -> None:
        if as_json:
            print(json.dumps(info.public()), flush=True)
        else:
            print(_describe(info, foreground=True), flush=True)

    try:
        run_stack(settings, broker_port=port, on_ready=announce, workers=not no_workers)
    except (StackError, ChildFailed, TansuError, TopicSetupError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("down")
def down(
    home: HomeOption = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait before killing the stack")] = 30.0,
) -> None:
    """Stop the stack running with this home (idempotent: no stack is not an error).

    Example: driftscope stack down --home ~/.driftscope
    """
    where = _home(home)
    try:
        info = stop_running_stack(where, timeout=timeout)
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if info is None:
        typer.echo(f"no stack running in {where}")
    else:
        typer.echo(f"stopped the stack (pid {info.pid}) in {where}")


@app.command("status")
def status(
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the state file as one JSON line")] = False,
) -> None:
    """Show the running stack; exit code 1 when none runs with this home.

    Example: driftscope stack status --json
    """
    where = _home(home)
    info = find_running_stack(where)
    if info is None:
        typer.echo(f"no stack running in {where}", err=True)
        raise typer.Exit(1)
    typer.echo(info.model_dump_json() if as_json else _describe(info))

