"""``driftscope status``: consumer lag, serving models, recent drift and worker counters in one view.

Sources: the broker (consumer groups, committed offsets, end offsets), the workers' status files
in ``<home>/workers/`` (serving versions, per-agent counters), and the store (promoted models, drift
events). Lag is ``end offset - committed offset`` with the end offset the broker reports; a broker
whose end offsets are wrong (Tansu counts record batches) can report an end below the committed
offset, and then the lag is shown as unknown rather than as a made-up number.

Exit codes: 0 shown (a missing store is reported in the output); 3 the broker does not answer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from rich.console import Console
from rich.table import Table

from driftscope.commands.clients import (
    ExitCode,
    StoreReader,
    Unavailable,
    kafka_config,
    open_reader,
    resolve_settings,
    running_workers,
)
from driftscope.commands.query import jsonable

if TYPE_CHECKING:
    from consumers.store import Row

__all__ = ["PartitionLag", "consumer_lag", "status"]

stdout = Console()
stderr = Console(stderr=True)

_INTERNAL_GROUP_PREFIXES = ("driftscope-replay-",)


@dataclass(frozen=True)
class PartitionLag:
    """One consumer group's position in one partition."""

    group: str
    topic: str
    partition: int
    committed: int
    end: int | None

    @property
    def lag(self) -> int | None:
        if self.end is None or self.end < self.committed:
            return None
        return self.end - self.committed


def consumer_lag(conf: dict[str, Any], timeout: float = 10.0) -> list[PartitionLag]:
    """Committed offset, end offset and lag of every consumer group and partition it committed."""
    admin = AdminClient({**conf, "log_level": 0})
    try:
        listing = admin.list_consumer_groups(request_timeout=timeout).result()
    except KafkaException as exc:
        raise Unavailable(f"the broker did not list consumer groups: {exc}") from exc
    groups = sorted(g.group_id for g in listing.valid if not g.group_id.startswith(_INTERNAL_GROUP_PREFIXES))
    committed: list[tuple[str, TopicPartition]] = []
    for group in groups:
        futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=timeout)
        for result in futures.values():
            committed.extend((group, tp) for tp in result.result().topic_partitions or [] if tp.offset >= 0)
    wanted = {TopicPartition(tp.topic, tp.partition): OffsetSpec.latest() for _, tp in committed}
    ends: dict[tuple[str, int], int] = {}
    if wanted:
        for tp, future in admin.list_offsets(wanted, request_timeout=timeout).items():
            try:
                ends[(tp.topic, tp.partition)] = future.result().offset
            except KafkaException:
                continue  # shown as an unknown end offset
    return [
        PartitionLag(group, tp.topic, tp.partition, tp.offset, ends.get((tp.topic, tp.partition)))
        for group, tp in sorted(committed, key=lambda item: (item[0], item[1].topic, item[1].partition))
    ]


def _store_sections(reader: StoreReader, drift_events: int) -> dict[str, list[Row]]:
    models = reader.query(
        "SELECT kind, argMax(version, created_at) AS version, max(created_at) AS promoted_at "
        "FROM models FINAL WHERE promoted = 1 GROUP BY kind ORDER BY kind"
    )
    drift = reader.query(
        "SELECT detected_at, instrument_id, signal, detector, statistic, threshold, severity, model_version "
        "FROM drift_events FINAL ORDER BY detected_at DESC LIMIT %(limit)s",
        {"limit": drift_events},
    )
    return {"promoted_models": models, "drift_events": drift}


def status(
    home: Annotated[
        Path | None, typer.Option("--home", help="state directory (default: $DRIFTSCOPE_HOME)", show_default=False)
    ] = None,
    drift_events: Annotated[int, typer.Option(min=0, help="how many recent drift events to show")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print everything as one JSON object")] = False,
) -> None:
    """Show consumer lag per group and partition, serving model versions, recent drift events and worker counters.

    Lag is unknown (not guessed) when the broker's end offset is below the committed one (Tansu's are).

    Example: driftscope status --drift-events 10

    Example: driftscope status --json | jq '.lag[] | select(.lag > 100)'
    """
    from consumers.store import StoreError

    settings = resolve_settings(home)
    try:
        lag = consumer_lag(kafka_config(settings))
    except Unavailable as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.UNAVAILABLE)) from None
    workers = running_workers(settings.home)
    sections: dict[str, list[Row]] = {"promoted_models": [], "drift_events": []}
    store_error = None
    try:
        reader = open_reader(settings)
        try:
            sections = _store_sections(reader, drift_events)
        finally:
            reader.close()
    except (StoreError, Unavailable) as exc:
        store_error = str(exc)
    if as_json:
        print(json.dumps(jsonable({
            "lag": [{**asdict(p), "lag": p.lag} for p in lag],
            "workers": workers,
            **sections,
            "store_error": store_error,
        })))  # fmt: skip
        return
    _print_lag(lag)
    _print_workers(workers)
    _print_rows("promoted models (store)", sections["promoted_models"])
    _print_rows(f"last {drift_events} drift events", sections["drift_events"])
    if store_error:
        stderr.print(f"[yellow]store not read:[/yellow] {store_error}", highlight=False)


def _print_lag(lag: list[PartitionLag]) -> None:
    if not lag:
        stdout.print("no consumer group has committed offsets yet")
        return
    table = Table("group", "topic", "partition", "committed", "end", "lag", title="consumer lag")
    for p in lag:
        table.add_row(p.group, p.topic, str(p.partition), str(p.committed),
                      "?" if p.end is None else str(p.end), "?" if p.lag is None else str(p.lag))
    stdout.print(table)


def _on(provider: str | None) -> str:
    """' on cpu' for CPUExecutionProvider: where a served model runs."""
    return f" on {provider.removesuffix('ExecutionProvider').lower()}" if provider else ""


def _print_workers(workers: list[dict[str, Any]]) -> None:
    if not workers:
        stdout.print("no running worker has written a status file")
        return
    table = Table("worker", "agent", "processed", "failed", "dead-lettered", "p50 ms", "p99 ms", "CPU s",
                  "last error", title="workers")
    for worker in workers:
        providers = worker.get("providers") or {}
        models = ", ".join(f"{kind} {version}{_on(providers.get(kind))}"
                           for kind, version in (worker.get("models") or {}).items())
        cpu = dict(worker.get("cpu_s") or {})
        table.add_row(f"{worker.get('worker')} (pid {worker.get('pid')})", f"serving: {models or '-'}", "", "", "", "",
                      "", _number(cpu.pop("process", None)), "")
        for agent, counters in (worker.get("agents") or {}).items():
            if not isinstance(counters, dict):
                continue
            table.add_row("", agent, *(_number(counters.get(k)) for k in (
                "processed", "failed", "dead_lettered", "latency_ms_p50", "latency_ms_p99")),
                _number(cpu.pop(agent, None)), str(counters.get("last_error") or ""))
        for group, seconds in cpu.items():  # threads not named after an agent: the store, the event loop
            table.add_row("", f"({group} threads)", "", "", "", "", "", _number(seconds), "")
    stdout.print(table)


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _print_rows(title: str, rows: list[Row]) -> None:
    if not rows:
        stdout.print(f"{title}: none")
        return
    table = Table(*rows[0], title=title)
    for row in rows:
        table.add_row(*(str(jsonable(v)) for v in row.values()))
    stdout.print(table)
