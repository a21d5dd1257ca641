"""``driftscope worker``: run the streaming agents (Faust) in this process.

Example::

    driftscope worker                                  # every agent, against the running stack
    driftscope worker --web                            # loopback pages: counters, read-only store queries

Workers that run the same agents form one consumer group and split the partitions between them.
With a ClickHouse server, start several plain ``driftscope worker``. With the embedded store (one
process may open chDB), scale out as one sink plus several processing workers::

    driftscope worker --agents sink,retrain --web      # owns chDB; its own group sees every topic
    driftscope worker --agents fingerprint,segment,drift   # start N of these; they split the images
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer

from driftscope.commands.clients import ExitCode
from driftscope.kafka_admin import TopicSetupError
from driftscope.settings import load_settings
from driftscope.worker import WorkerError, WorkerOptions, run_worker
from models.devices import DEVICES, Device
from streams.config import AGENT_NAMES, AgentName

__all__ = ["worker"]


def _agents(spec: str) -> frozenset[AgentName]:
    names = {part.strip() for part in spec.split(",") if part.strip()}
    unknown = names - set(AGENT_NAMES)
    if unknown or not names:
        raise typer.BadParameter(f"choose from {', '.join(AGENT_NAMES)} (comma-separated); got {spec!r}")
    return frozenset(cast(AgentName, name) for name in names)


def _device(name: str) -> Device:
    if name not in DEVICES:
        raise typer.BadParameter(f"choose from {', '.join(DEVICES)}; got {name!r}")
    return cast(Device, name)


def worker(
    home: Annotated[Path | None, typer.Option("--home", help="state directory (default: $DRIFTSCOPE_HOME)")] = None,
    agents: Annotated[str, typer.Option(help="comma-separated agents to run")] = ",".join(AGENT_NAMES),
    no_sink: Annotated[
        bool, typer.Option("--no-sink", help="leave out the sink and the retrain trigger (they need the store)")
    ] = False,
    concurrency: Annotated[
        int, typer.Option(min=1, max=16, help="actors (and inference threads) of the segment agent")
    ] = 2,
    fingerprint_concurrency: Annotated[
        int | None, typer.Option(min=1, max=16, help="actors of the fingerprint agent (default: half of --concurrency)")
    ] = None,
    threads: Annotated[int, typer.Option(min=1, help="onnxruntime intra-op threads per model")] = 1,
    device: Annotated[
        str, typer.Option(help="where the networks run: auto, cpu or cuda (auto takes CUDA when onnxruntime can: "
                          "the onnxruntime-gpu build and a GPU)")
    ] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="images per inference batch (at most)")] = 8,
    batch_ms: Annotated[float, typer.Option(min=1, help="longest wait to fill a batch, ms")] = 50.0,
    web: Annotated[bool, typer.Option("--web/--no-web", help="serve counters and queries on 127.0.0.1")] = False,
    web_port: Annotated[int | None, typer.Option(help="loopback port of the web pages (default: a free one)")] = None,
    name: Annotated[str | None, typer.Option(help="worker name in logs and status (default: host-pid)")] = None,
) -> None:
    """Run the fingerprint, segment, drift, retrain and sink agents (or some of them).

    Example: driftscope worker --agents fingerprint,segment,drift --no-web
    """
    selected = _agents(agents)
    if no_sink:
        selected -= {"sink", "retrain"}
    if not selected:
        raise typer.BadParameter("no agent left to run")
    options = WorkerOptions(
        agents=selected, concurrency=concurrency, fingerprint_concurrency=fingerprint_concurrency,
        intra_op_threads=threads, device=_device(device), image_batch_size=batch_size, image_batch_ms=batch_ms,
        web=web or web_port is not None, web_port=web_port, name=name,
    )
    try:
        run_worker(load_settings(home=home), options)
    except WorkerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except TopicSetupError as exc:
        # A refused TLS handshake or SASL login ends here too: say where to look, not a traceback.
        typer.echo(f"error: {exc}; check DRIFTSCOPE_KAFKA__* (bootstrap servers, TLS CA, SASL user and "
                   "password)", err=True)  # fmt: skip
        raise typer.Exit(int(ExitCode.UNAVAILABLE)) from exc


