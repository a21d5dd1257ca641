"""Composition root of a streaming worker: Settings (+ CLI options) → StreamsConfig → running app.

This is the only place that knows both the operator's settings and the streaming package: it fills
blanks from a running embedded stack, makes sure the topics exist and a model is serving, picks a
loopback port for the web pages, and runs the Faust worker in this process.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from driftscope.kafka_admin import ensure_topics
from driftscope.settings import Settings
from driftscope.stack import apply_running_stack
from models.devices import Device
from models.registry import Registry
from schemas.blobstore import BlobStore
from streams.config import AGENT_NAMES, AgentName, StreamsConfig

__all__ = ["WorkerError", "WorkerOptions", "run_worker", "streams_config"]


class WorkerError(RuntimeError):
    """The worker cannot start with these settings; the message says what to change."""


@dataclass(frozen=True)
class WorkerOptions:
    """What ``driftscope worker`` adds on top of the settings."""

    agents: frozenset[AgentName] = frozenset(AGENT_NAMES)
    concurrency: int = 2
    fingerprint_concurrency: int | None = None
    intra_op_threads: int = 1
    device: Device = "auto"
    image_batch_size: int = 8
    image_batch_ms: float = 50.0
    web: bool = False
    web_port: int | None = None
    name: str | None = None


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def streams_config(settings: Settings, options: WorkerOptions) -> StreamsConfig:
    """The app configuration for ``settings`` (already resolved against a running stack)."""
    kafka = settings.kafka
    if not kafka.bootstrap_servers:
        raise WorkerError(
            "no Kafka broker configured: start the embedded stack (`driftscope stack up`) or set "
            "DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS"
        )
    store_url = settings.resolved_clickhouse_url if options.agents & {"sink", "retrain"} else None
    name = options.name or f"worker-{socket.gethostname()}-{os.getpid()}"
    web_port = (options.web_port or _free_loopback_port()) if options.web else None
    return StreamsConfig(
        bootstrap_servers=kafka.bootstrap_servers,
        security_protocol=kafka.security_protocol,
        sasl_mechanism=kafka.sasl_mechanism,
        sasl_username=kafka.sasl_username,
        sasl_password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
        ssl_ca_location=kafka.ssl_ca_location,
        ssl_check_hostname=kafka.ssl_endpoint_identification_algorithm == "https",
        session_timeout_s=kafka.session_timeout_s,
        datadir=settings.home / "faust",
        status_dir=settings.home / "workers",
        worker_name=name,
        blob_url=settings.resolved_blob_url,
        store_url=store_url,
        agents=options.agents,
        concurrency=options.concurrency,
        fingerprint_concurrency=options.fingerprint_concurrency,
        intra_op_threads=options.intra_op_threads,
        device=options.device,
        image_batch_size=options.image_batch_size,
        image_batch_ms=options.image_batch_ms,
        web_enabled=options.web,
        web_port=web_port,
        log_level=settings.log_level,
    )


def _ensure_serving_models(blob_url: str) -> None:
    """Serve the shipped baseline when the registry serves nothing yet (a fresh home)."""
    registry = Registry(BlobStore(blob_url))
    if not {"segmenter", "encoder"} <= set(registry.serving_versions()):
        registry.bootstrap_from_baseline()


def _check_device(device: Device) -> None:
    """Refuse a device this onnxruntime cannot give before touching Kafka (``--device cuda`` on a CPU build)."""
    from models.runners import execution_providers  # onnxruntime loads only when a worker runs

    try:
        execution_providers(device)
    except ValueError as exc:
        raise WorkerError(str(exc)) from exc


def run_worker(settings: Settings, options: WorkerOptions) -> None:
    """Run one worker in this process until SIGTERM/SIGINT."""
    from streams.build import build_app  # Faust and onnxruntime load only when a worker runs

    settings = apply_running_stack(settings)
    config = streams_config(settings, options)
    if options.agents & {"segment", "fingerprint"}:
        _check_device(options.device)
    ensure_topics(settings.kafka.librdkafka_config())
    if options.agents & {"segment", "fingerprint", "retrain"}:
        _ensure_serving_models(config.blob_url)
    try:
        app = build_app(config)
    except ValueError as exc:  # e.g. --device cuda where onnxruntime's CUDA provider cannot start
        raise WorkerError(str(exc)) from exc
    app.run()
