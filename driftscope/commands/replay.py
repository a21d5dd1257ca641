"""``driftscope replay``: copy a slice of a topic, by time or by offset, to the same topic or another.

Exit codes: 0 replayed (or counted, with --dry-run); 1 the broker failed the replay or did not
acknowledge every message; 2 a range that cannot mean anything; 3 no broker or no such topic.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from driftscope.commands.clients import ExitCode, Unavailable, kafka_config, resolve_settings
from producers.kafka import PublishError
from producers.replay import HEADER_ORIGIN, ReplayError, ReplayReport, ReplaySpec, replay

__all__ = ["parse_time", "replay_command"]

stdout = Console()
stderr = Console(stderr=True)

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (no zone means UTC), ``now``, or a time relative to now such as ``-2h``.

    >>> parse_time("2026-03-01T12:00").isoformat()
    '2026-03-01T12:00:00+00:00'
    >>> parse_time("-90m", now=datetime(2026, 3, 1, 12, tzinfo=UTC)).isoformat()
    '2026-03-01T10:30:00+00:00'
    """
    now = now or datetime.now(UTC)
    if text == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative:
        return now - timedelta(**{_UNITS[relative[2]]: float(relative[1])})
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO time (2026-03-01T12:00:00Z), 'now' or -<n>[smhd]") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _time_option(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value)


def replay_command(
    topic: Annotated[str, typer.Option("--topic", "-t", help="topic to read from", show_default=False)],
    to_topic: Annotated[
        str | None, typer.Option("--to-topic", help="topic to write to (default: the same topic)")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="first message time, inclusive: ISO 8601 (UTC if no zone), 'now' or -2h"),
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="end time, exclusive; default: the end you can see")] = None,
    from_offset: Annotated[int | None, typer.Option(help="first offset, inclusive, in every chosen partition")] = None,
    to_offset: Annotated[int | None, typer.Option(help="end offset, exclusive, in every chosen partition")] = None,
    partition: Annotated[
        list[int] | None, typer.Option("--partition", "-p", help="only this partition (repeat the option)")
    ] = None,
    instrument: Annotated[
        str | None, typer.Option("--instrument", "-i", help="only messages keyed by this instrument")
    ] = None,
    rate: Annotated[float | None, typer.Option(min=0.001, help="at most this many messages per second")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only count what would be replayed")] = False,
    idle_timeout: Annotated[
        float, typer.Option(min=0.5, help="seconds without a message that mean the end of the topic was reached")
    ] = 5.0,
    home: Annotated[
        Path | None, typer.Option("--home", help="state directory (default: $DRIFTSCOPE_HOME)", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the outcome as one JSON object")] = False,
) -> None:
    """Replay messages of a topic by time range or offsets, optionally filtered, to the same or another topic.

    Replayed messages keep key, value and headers and gain ds-replay-id, ds-replayed-from (topic/partition/offset)
    and ds-replayed-at headers; partition order is kept.

    The end is --to, --to-offset, or the last message seen before --idle-timeout seconds of quiet (the broker's
    high watermark is not trusted).

    Example: driftscope replay --topic images.raw --from 2026-03-01T08:00 --to 2026-03-01T09:00 --to-topic images.replay

    Example: driftscope replay -t images.raw --from -2h -i scope-3 --rate 20 --dry-run
    """
    spec = ReplaySpec(
        topic=topic, target=to_topic, start=_time_option(start), end=_time_option(end),
        from_offset=from_offset, to_offset=to_offset, partitions=tuple(partition) if partition else None,
        instrument_id=instrument, rate=rate, dry_run=dry_run, idle_timeout_s=idle_timeout,
    )  # fmt: skip
    try:
        spec.validate()
    except ReplayError as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.USAGE)) from None
    settings = resolve_settings(home)
    needed = (topic,) if dry_run else tuple(dict.fromkeys((topic, spec.target_topic)))
    try:
        conf = kafka_config(settings, topics=needed)
    except Unavailable as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.UNAVAILABLE)) from None

    verb = "counting" if dry_run else f"replaying to {spec.target_topic}"
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}: {task.completed} messages"),
                        TimeElapsedColumn(), console=stderr, transient=True)
    try:
        with progress:
            task = progress.add_task(f"{verb} from {topic}", total=None)
            report = replay(spec, conf, on_message=lambda r: progress.update(task, completed=r.replayed))
    except (ReplayError, PublishError) as exc:
        stderr.print(f"[red]replay failed:[/red] {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.FAILED)) from None
    if as_json:
        print(json.dumps(report.as_dict()))
    else:
        _print_report(report)


def _print_report(report: ReplayReport) -> None:
    verb = "would replay" if report.dry_run else "replayed"
    stdout.print(f"{verb} {report.replayed} messages from {report.source} to {report.target}"
                 f" ({report.skipped} filtered out); replay id {report.replay_id}", highlight=False)
    if report.per_partition:
        table = Table("partition", "messages", "first offset", "last offset")
        for p, n in sorted(report.per_partition.items()):
            table.add_row(str(p), str(n), str(report.first_offset[p]), str(report.last_offset[p]))
        stdout.print(table)
    if not report.dry_run and report.replayed:
        stdout.print(f"each replayed message carries the header {HEADER_ORIGIN}=<topic>/<partition>/<offset>",
                     highlight=False)
