"""What a streaming worker is told: one frozen model, filled by the composition root from Settings.

Nothing in ``streams/`` reads the environment or the settings file; the worker command builds a
:class:`StreamsConfig` and passes it down, so a test can start an app with exactly the values it
needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.devices import Device

__all__ = ["AGENT_NAMES", "AgentName", "RetrainPolicy", "StreamsConfig", "fingerprint_actors"]

AgentName = Literal["fingerprint", "segment", "drift", "sink", "retrain"]
AGENT_NAMES: tuple[AgentName, ...] = ("fingerprint", "segment", "drift", "sink", "retrain")


class RetrainPolicy(BaseModel):
    """When a drift event becomes a retrain request (the debounce of the retrain trigger)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: No second request for the same instrument within this many seconds of the last one.
    cooldown_s: float = Field(default=3600.0, ge=0)
    #: Distinct drift events (per instrument, since the last request) needed before asking.
    min_events: int = Field(default=2, ge=1)
    #: Distinct images named as evidence by those events.
    min_evidence_images: int = Field(default=3, ge=0)
    #: Labelled images of the drifted domain (since the drift was first seen) needed before training:
    #: the trainer holds a third out to judge the candidate, so fewer make a noisy gate.
    min_labelled_images: int = Field(default=16, ge=0)
    #: How far back from the first drift event the training window reaches.
    lookback_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    #: Nearest labelled neighbours (by fingerprint, any instrument) added to the selection.
    neighbours: int = Field(default=8, ge=0)
    #: Hyperparameters passed through to the trainer.
    hyperparameters: dict[str, float | int | str] = Field(default_factory=dict)


def fingerprint_actors(segment_actors: int, chosen: int | None = None) -> int:
    """``chosen``, or by default half the segment agent's actors, rounded up (its step costs a third as much)."""
    return chosen or -(-segment_actors // 2)


class StreamsConfig(BaseModel):
    """Everything the Faust app and its agents need; validated once at start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app_id: str = "driftscope"
    #: ``host:port[,host:port]`` of the Kafka cluster.
    bootstrap_servers: str
    #: aiokafka security settings; PLAINTEXT by default.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = Field(default=None, repr=False)
    ssl_ca_location: str | None = None
    #: Check the broker's certificate names the host dialled (librdkafka's endpoint identification).
    ssl_check_hostname: bool = True
    session_timeout_s: float = Field(default=6.0, gt=0)
    #: Faust state (tables, the worker's own files).
    datadir: Path
    #: Where the worker writes its counter snapshots for ``driftscope status``.
    status_dir: Path
    worker_name: str = "worker"
    blob_url: str
    #: ClickHouse URL; required when the sink or the retrain trigger runs here.
    store_url: str | None = Field(default=None, repr=False)
    agents: frozenset[AgentName] = frozenset(AGENT_NAMES)

    #: Actors of the segment agent, each with its own inference thread. Two let one batch's
    #: post-processing (instances, measurements) overlap the next batch's inference.
    concurrency: int = Field(default=2, ge=1, le=16)
    #: Actors of the fingerprint agent; by default half as many as the segment agent's (rounded up).
    #: Its step costs about a third of the segment step's, so more actors would only add threads
    #: that contend with the segment actors for the cores.
    fingerprint_concurrency: int | None = Field(default=None, ge=1, le=16)
    #: onnxruntime intra-op threads per session.
    intra_op_threads: int = Field(default=1, ge=1)
    #: Where the two networks run (see :mod:`models.runners`): ``auto`` takes CUDA when onnxruntime can.
    device: Device = "auto"
    #: An image batch is at most this many images ...
    image_batch_size: int = Field(default=8, ge=1)
    #: ... or whatever arrived within this many milliseconds.
    image_batch_ms: float = Field(default=50.0, gt=0)
    #: Pixels per U-Net call (see :class:`streams.segment.Segmenter`): bounds the worker's memory.
    segment_pixel_budget: int = Field(default=2 * 512 * 512, ge=64 * 64)

    #: Sink flush bounds: records per batch and seconds between flushes. A batch keeps the bytes of its
    #: records until they are stored (images included), so the count also bounds the sink's memory.
    sink_batch_events: int = Field(default=200, ge=1)
    sink_flush_s: float = Field(default=0.5, gt=0)
    #: Back-off of the sink while the store is unavailable: start, cap.
    sink_backoff_s: float = Field(default=0.5, gt=0)
    sink_max_backoff_s: float = Field(default=30.0, gt=0)

    retrain: RetrainPolicy = Field(default_factory=RetrainPolicy)

    #: Messages buffered per agent stream before Faust stops fetching (bounds memory).
    stream_buffer_maxsize: int = Field(default=64, ge=4)
    #: Per-partition fetch limit; large enough for the biggest inline image (8 MiB topic limit).
    max_fetch_bytes: int = Field(default=8 * 1024 * 1024, ge=1024 * 1024)

    web_enabled: bool = False
    #: The web server only ever binds to loopback: it serves counters and read-only store queries.
    web_port: int | None = Field(default=None, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @property
    def fingerprint_actors(self) -> int:
        return fingerprint_actors(self.concurrency, self.fingerprint_concurrency)

    @model_validator(mode="after")
    def _consistent(self) -> StreamsConfig:
        needs_store = self.agents & {"sink", "retrain"}
        if needs_store and not self.store_url:
            raise ValueError(f"agents {sorted(needs_store)} need a store_url")
        if self.web_enabled and self.web_port is None:
            raise ValueError("web_enabled needs a web_port (pick a free loopback port)")
        if not self.agents:
            raise ValueError("at least one agent must run")
        return self

    @property
    def group_id(self) -> str:
        """The consumer group (Faust app id) of this worker: one per set of agents.

        A group gives each partition to exactly one member, and that member's agents are the only
        ones to see its records. So workers split the work only with workers that run the same
        agents; a worker with another set (say the one sink of an embedded store, next to several
        ``fingerprint,segment,drift`` workers) needs its own group to see every partition.
        """
        if self.agents == frozenset(AGENT_NAMES):
            return self.app_id
        return f"{self.app_id}.{'+'.join(name for name in AGENT_NAMES if name in self.agents)}"

    @property
    def broker_url(self) -> list[str]:
        """Faust broker URLs (``kafka://`` transport: aiokafka; ``confluent://`` hangs at recovery)."""
        return [f"kafka://{server.strip()}" for server in self.bootstrap_servers.split(",") if server.strip()]
