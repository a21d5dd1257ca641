"""ClickHouse store benchmark: rows/s the sink's inserts reach, and bytes per row on disk.

Builds the rows the metrics sink writes for one image (``consumers.store.rows.rows_by_table`` on
real event models: an ``images`` row, a ``fingerprints`` row with the encoder's latent, a
``predictions`` row and one ``objects`` row per segmented object), inserts them in batches of
``--batch`` (the sink's default batch, 500 events) through :class:`consumers.store.Store`, and
reports per table and per backend:

- rows/s of the insert calls alone (event building and row mapping are timed apart),
- images/s: how many images' worth of rows (all four tables) one store connection absorbs,
- bytes on disk per row after the inserts (compressed, from ``system.parts``).

Backends: ``chdb`` (embedded, ClickHouse 26.x in this process) and ``server`` (a ClickHouse server:
``--server-url``, or Debian's ``clickhouse-server`` started here as a child process on loopback).

    .venv/bin/python -m bench.store                       # both backends, 20,000 images
    .venv/bin/python -m bench.store --backend chdb --images 5000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from consumers.store import Store, open_store
from consumers.store.base import Row
from consumers.store.rows import rows_by_table
from consumers.store.server_process import ClickHouseServerProcess
from schemas.events import (
    BlobRef,
    Event,
    FingerprintEvent,
    ImageEvent,
    ImageStats,
    ObjectMeasurement,
    PredictionEvent,
)

__all__ = ["TableFigures", "image_events", "measure", "rows_for_images"]

TABLE_ORDER = ("images", "fingerprints", "predictions", "objects")


@dataclass(frozen=True)
class TableFigures:
    """What one table absorbed on one backend."""

    backend: str
    server_version: str
    table: str
    rows: int
    seconds: float
    bytes_on_disk: int | None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")

    @property
    def bytes_per_row(self) -> float | None:
        return self.bytes_on_disk / self.rows if self.bytes_on_disk is not None and self.rows else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_s": round(self.rows_per_s), "bytes_per_row": self.bytes_per_row}


def _ref(rng: np.random.Generator, prefix: str, size: int) -> BlobRef:
    digest = rng.bytes(32).hex()
    return BlobRef(uri=f"ds-blob://{prefix}/{digest[:2]}/{digest}", sha256=digest, size=size)


def image_events(
    n_images: int, *, objects_per_image: int, latent_dim: int, instruments: int, seed: int = 0
) -> list[Event]:
    """The image, fingerprint and prediction events of ``n_images`` images, with varied values."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[Event] = []
    for n in range(n_images):
        instrument = f"scope-{n % instruments:02d}"
        image_id = f"{instrument}-{n:08d}"
        acquired = start + timedelta(seconds=n / instruments)
        created = acquired + timedelta(seconds=float(rng.uniform(0.5, 3)))
        stats = rng.uniform(0, 1000, size=8)
        events.append(
            ImageEvent(
                image_id=image_id,
                instrument_id=instrument,
                acquired_at=acquired,
                plate="P1",
                well=f"A{n % 12 + 1}",
                pixel_size_um=0.325,
                shape=(1024, 1024),
                dtype="uint16",
                blob=_ref(rng, "images", 1_400_000),
                source="bench",
            )
        )
        events.append(
            FingerprintEvent(
                image_id=image_id,
                instrument_id=instrument,
                acquired_at=acquired,
                encoder_version="enc-1",
                image=_ref(rng, "images", 1_400_000),
                latent=rng.normal(size=latent_dim).tolist(),
                reconstruction_error=float(rng.uniform(0, 0.1)),
                stats=ImageStats(
                    p01=stats[0],
                    p50=stats[1],
                    p99=stats[2],
                    mean=stats[3],
                    std=stats[4],
                    focus=stats[5],
                    noise=stats[6],
                    saturation_fraction=float(rng.uniform(0, 0.01)),
                ),
                created_at=created,
            )
        )
        centroids = rng.uniform(0, 1024, size=(objects_per_image, 2))
        objects = [
            ObjectMeasurement(
                label=i + 1,
                area=float(rng.uniform(50, 800)),
                perimeter=float(rng.uniform(20, 120)),
                eccentricity=float(rng.uniform(0, 0.99)),
                mean_intensity=float(rng.uniform(100, 4000)),
                centroid_y=float(y),
                centroid_x=float(x),
            )
            for i, (y, x) in enumerate(centroids)
        ]
        events.append(
            PredictionEvent(
                image_id=image_id,
                instrument_id=instrument,
                acquired_at=acquired,
                model_version="seg-1",
                mask=_ref(rng, "masks", 60_000),
                object_count=objects_per_image,
                foreground_fraction=float(rng.uniform(0.05, 0.4)),
                mean_confidence=float(rng.uniform(0.7, 1)),
                entropy=float(rng.uniform(0, 0.5)),
                latency_ms=float(rng.uniform(20, 200)),
                objects=objects,
                created_at=created,
            )
        )
    return events


def rows_for_images(n_images: int, **kwargs: Any) -> dict[str, list[Row]]:
    """The sink's rows for ``n_images`` images, per table."""
    return rows_by_table(image_events(n_images, **kwargs))


def _bytes_on_disk(store: Store) -> dict[str, int]:
    try:
        rows = store.query(
            "SELECT table, sum(bytes_on_disk) AS bytes FROM system.parts "
            "WHERE active AND database = currentDatabase() GROUP BY table"
        )
    except Exception:  # 18.16's system.parts predates bytes_on_disk
        rows = store.query(
            "SELECT table, sum(bytes) AS bytes FROM system.parts "
            "WHERE active AND database = currentDatabase() GROUP BY table"
        )
    return {str(row["table"]): int(row["bytes"]) for row in rows}


def measure(
    store: Store, backend: str, tables: dict[str, list[Row]], batch_images: int, n_images: int
) -> list[TableFigures]:
    """Insert every table's rows in batches of ``batch_images`` images' worth; time the inserts."""
    store.migrate()
    version = ".".join(map(str, store.server_version))
    figures = []
    for table in TABLE_ORDER:
        rows = tables[table]
        per_image = len(rows) // n_images
        step = max(1, batch_images * per_image)
        started = time.perf_counter()
        for offset in range(0, len(rows), step):
            store.insert(table, rows[offset : offset + step])
        elapsed = time.perf_counter() - started
        figures.append(TableFigures(backend, version, table, len(rows), elapsed, None))
    sizes = _bytes_on_disk(store)
    return [TableFigures(f.backend, f.server_version, f.table, f.rows, f.seconds, sizes.get(f.table)) for f in figures]


@contextmanager
def _backend(name: str, server_url: str | None) -> Iterator[Store]:
    with tempfile.TemporaryDirectory(prefix=f"bench-store-{name}-") as tmp:
        if name == "chdb":
            with open_store(f"chdb://{tmp}/chdb") as store:
                yield store
        elif server_url:
            with open_store(server_url) as store:
                yield store
        else:
            with ClickHouseServerProcess(Path(tmp) / "server") as server, open_store(server.url) as store:
                yield store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("chdb", "server", "both"), default="both")
    parser.add_argument("--server-url", help="clickhouse://... of a server to use instead of starting one")
    parser.add_argument("--images", type=int, default=20_000, help="images whose rows are inserted")
    parser.add_argument("--batch", type=int, default=500, help="images per insert batch (the sink's batch)")
    parser.add_argument("--objects", type=int, default=30, help="segmented objects per image")
    parser.add_argument("--latent", type=int, default=32, help="fingerprint latent dimension")
    parser.add_argument("--instruments", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="one JSON line instead of a table")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    tables = rows_for_images(
        args.images, objects_per_image=args.objects, latent_dim=args.latent, instruments=args.instruments
    )
    build_s = time.perf_counter() - started
    backends = ("chdb", "server") if args.backend == "both" else (args.backend,)
    results: list[TableFigures] = []
    for name in backends:
        with _backend(name, args.server_url) as store:
            results += measure(store, name, tables, args.batch, args.images)

    summary = {backend: args.images / sum(f.seconds for f in results if f.backend == backend) for backend in backends}
    context = {
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "python": platform.python_version(),
        "images": args.images,
        "batch_images": args.batch,
        "objects_per_image": args.objects,
        "latent_dim": args.latent,
        "event_build_and_row_mapping_s": round(build_s, 2),
    }
    if args.json:
        print(
            json.dumps(
                {
                    "context": context,
                    "tables": [f.as_dict() for f in results],
                    "images_per_s": {k: round(v) for k, v in summary.items()},
                }
            )
        )
        return 0
    print("context: " + ", ".join(f"{k}={v}" for k, v in context.items()))
    print(f"{'backend':8} {'version':14} {'table':13} {'rows':>9} {'seconds':>8} {'rows/s':>10} {'bytes/row':>10}")
    for f in results:
        per_row = f"{f.bytes_per_row:.1f}" if f.bytes_per_row is not None else "-"
        print(
            f"{f.backend:8} {f.server_version:14} {f.table:13} {f.rows:9d} {f.seconds:8.2f} "
            f"{f.rows_per_s:10.0f} {per_row:>10}"
        )
    for backend, rate in summary.items():
        print(f"{backend}: {rate:.0f} images/s of sink rows (all four tables, one connection)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
