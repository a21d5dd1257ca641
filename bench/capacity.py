"""Capacity figures that do not need the running pipeline, and the capacity model that uses them.

Measures, with the project's own encoding code on the real DSB 2018 nuclei image (tiled by
mirroring to 1024 and 2048 px so larger fields keep real image statistics):

- blob bytes per image: the claim-check blob of the image and of its predicted instance mask
  (``schemas.claimcheck.array_to_blob``: zstd level 3 over ``.npy``), per image size;
- Kafka bytes per event: the framed record (``schemas.codec.encode``) of each event an image causes.

Then evaluates the capacity model for a facility (``--instruments`` x ``--rate`` images/s) with
ClickHouse figures from ``bench/store.py --json`` output (``--store-json``) and, when given, the
pipeline's images/s per core from ``bench/pipeline.py`` (``--pipeline-images-per-core``); without
that figure the worker sizing is printed as a formula, not invented.

    .venv/bin/python -m bench.capacity
    .venv/bin/python -m bench.capacity --store-json store.json --pipeline-images-per-core 4.0 --json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from models.data.dsb import dsb_image
from models.measure import measure_objects
from schemas.blobstore import BlobStore
from schemas.claimcheck import DEFAULT_THRESHOLD_BYTES, array_to_blob, image_event
from schemas.codec import encode
from schemas.events import FingerprintEvent, ImageStats, ObjectMeasurement, PredictionEvent
from schemas.topics import TOPICS

__all__ = ["ImageSizeFigures", "facility_model", "mosaic", "size_figures"]

SECONDS_PER_DAY = 86_400
LATENT_DIM = 32  # models.autoencoder default


@dataclass(frozen=True)
class ImageSizeFigures:
    """Bytes that one image of a given size costs in the blob store and on Kafka."""

    side: int
    raw_bytes: int
    image_blob_bytes: int
    mask_blob_bytes: int
    objects: int
    image_record_bytes: int
    claim_checked: bool
    fingerprint_record_bytes: int
    prediction_record_bytes: int

    @property
    def blob_bytes(self) -> int:
        return self.image_blob_bytes + self.mask_blob_bytes

    @property
    def kafka_bytes(self) -> int:
        return self.image_record_bytes + self.fingerprint_record_bytes + self.prediction_record_bytes


def mosaic(array: np.ndarray, side: int, *, labels: bool = False) -> np.ndarray:
    """``array`` tiled into a ``side`` x ``side`` field without byte-level repeats.

    Plain or mirrored copies would repeat whole rows, which zstd finds, and the blob sizes would
    come out too small. Each tile is instead one of the 8 rotations/reflections of the original
    with a distinct intensity offset (a slightly different background level), so no row repeats;
    for an instance mask the offset shifts the labels, keeping every object distinct.
    """
    reps = math.ceil(side / array.shape[0])
    rows = []
    for i in range(reps):
        row = []
        for j in range(reps):
            k = i * reps + j
            tile = np.rot90(array, k % 4)
            tile = tile.T if (k // 4) % 2 else tile
            if labels:
                tile = np.where(tile > 0, tile + k * int(array.max()), 0)
            else:
                tile = tile + np.asarray(k + 1, dtype=array.dtype)
            row.append(tile)
        rows.append(np.concatenate(row, axis=1))
    return np.ascontiguousarray(np.concatenate(rows, axis=0)[:side, :side])


def _mask_dtype(labels: np.ndarray) -> np.ndarray:
    # what the segment agent stores (streams.segment._compact)
    return labels.astype(np.uint16) if labels.max(initial=0) < 2**16 else labels.astype(np.int32)


def size_figures(side: int, store: BlobStore) -> ImageSizeFigures:
    """Measure one image size on the real nuclei image."""
    image, mask = dsb_image()
    pixels, labels = mosaic(image, side), mosaic(mask, side, labels=True)
    now = datetime.now(UTC)
    image_blob = array_to_blob(pixels, store, prefix="images")
    mask_blob = array_to_blob(_mask_dtype(labels), store, prefix="masks")
    event = image_event(pixels, store=store, image_id=f"img-{side}", instrument_id="scope-01", acquired_at=now)
    objects = [ObjectMeasurement(**row) for row in measure_objects(labels, pixels)]
    fingerprint = FingerprintEvent(
        image_id=event.image_id,
        instrument_id="scope-01",
        acquired_at=now,
        encoder_version="enc-1",
        image=event.blob or image_blob,
        latent=[0.123456789] * LATENT_DIM,
        reconstruction_error=0.01,
        stats=ImageStats(p01=1.0, p50=2.0, p99=3.0, mean=2.0, std=1.0, focus=10.0, noise=1.0, saturation_fraction=0.0),
    )
    prediction = PredictionEvent(
        image_id=event.image_id,
        instrument_id="scope-01",
        acquired_at=now,
        model_version="seg-1",
        mask=mask_blob,
        object_count=len(objects),
        foreground_fraction=float(np.count_nonzero(labels)) / labels.size,
        mean_confidence=0.9,
        entropy=0.2,
        latency_ms=50.0,
        objects=objects,
    )
    return ImageSizeFigures(
        side=side,
        raw_bytes=pixels.nbytes,
        image_blob_bytes=image_blob.size,
        mask_blob_bytes=mask_blob.size,
        objects=len(objects),
        image_record_bytes=len(encode(event)),
        claim_checked=event.blob is not None,
        fingerprint_record_bytes=len(encode(fingerprint)),
        prediction_record_bytes=len(encode(prediction)),
    )


def _store_rates(store_json: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per backend: rows/s and bytes/row per table, from ``bench/store.py --json``."""
    rates: dict[str, dict[str, float]] = {}
    for row in store_json["tables"]:
        rates.setdefault(row["backend"], {})[f"{row['table']}_rows_per_s"] = row["rows_per_s"]
        rates[row["backend"]][f"{row['table']}_bytes_per_row"] = row["bytes_per_row"]
    return rates


def facility_model(
    *,
    instruments: int,
    rate: float,
    size: ImageSizeFigures,
    objects_per_image: float,
    store_rates: dict[str, float] | None,
    images_per_core: float | None,
    worker_cores: int,
    headroom: float,
) -> dict[str, Any]:
    """The capacity model: what a facility of ``instruments`` x ``rate`` images/s needs of each part."""
    images_per_s = instruments * rate
    design_rate = images_per_s * headroom
    partitions = TOPICS["images.raw"].partitions
    model: dict[str, Any] = {
        "images_per_s": images_per_s,
        "design_images_per_s": design_rate,
        "images_per_day": images_per_s * SECONDS_PER_DAY,
        "blob_bytes_per_day": size.blob_bytes * images_per_s * SECONDS_PER_DAY,
        "kafka_bytes_per_day": size.kafka_bytes * images_per_s * SECONDS_PER_DAY,
        "kafka_bytes_retained_images_raw": size.image_record_bytes
        * images_per_s
        * int(TOPICS["images.raw"].config["retention.ms"])
        / 1000,
        "clickhouse_rows_per_s": images_per_s * (3 + objects_per_image),
        "images_raw_partitions": partitions,
    }
    if store_rates is not None:
        # insert time per image, table by table: the objects table scales with the objects per image
        seconds_per_image = sum(
            (objects_per_image if table == "objects" else 1) / store_rates[f"{table}_rows_per_s"]
            for table in ("images", "fingerprints", "predictions", "objects")
        )
        model["clickhouse_images_per_s_per_connection"] = 1 / seconds_per_image
        model["clickhouse_connections_needed"] = design_rate * seconds_per_image
        model["clickhouse_bytes_per_day"] = (
            images_per_s
            * SECONDS_PER_DAY
            * sum(
                store_rates[f"{table}_bytes_per_row"] * (objects_per_image if table == "objects" else 1)
                for table in ("images", "fingerprints", "predictions", "objects")
            )
        )
    if images_per_core is not None:
        cores = design_rate / images_per_core
        workers = math.ceil(cores / worker_cores)
        model.update(worker_cores_needed=cores, workers_needed=workers, fits_partitions=workers <= partitions)
    return model


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000:
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512,1024,2048", help="image sides to measure, px")
    parser.add_argument("--instruments", type=int, default=20)
    parser.add_argument("--rate", type=float, default=1.0, help="images/s per instrument")
    parser.add_argument("--size", type=int, default=1024, help="image side used in the facility model")
    parser.add_argument("--headroom", type=float, default=2.0, help="design for this multiple of the mean rate")
    parser.add_argument("--worker-cores", type=int, default=2, help="cores per worker replica")
    parser.add_argument("--store-json", type=Path, help="output of `python -m bench.store --json`")
    parser.add_argument("--store-backend", default="server", help="which backend's figures the model uses")
    parser.add_argument("--pipeline-images-per-core", type=float, help="from bench/pipeline.py, at --size")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    sides = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        store = BlobStore(tmp)
        figures = {side: size_figures(side, store) for side in sorted({*sides, args.size})}
    chosen = figures[args.size]
    store_rates = None
    if args.store_json:
        store_rates = _store_rates(json.loads(args.store_json.read_text()))[args.store_backend]
    model = facility_model(
        instruments=args.instruments,
        rate=args.rate,
        size=chosen,
        objects_per_image=chosen.objects,
        store_rates=store_rates,
        images_per_core=args.pipeline_images_per_core,
        worker_cores=args.worker_cores,
        headroom=args.headroom,
    )

    if args.json:
        print(
            json.dumps(
                {
                    "sizes": [
                        {**asdict(f), "blob_bytes": f.blob_bytes, "kafka_bytes": f.kafka_bytes}
                        for f in figures.values()
                    ],
                    "threshold_bytes": DEFAULT_THRESHOLD_BYTES,
                    "facility": model,
                }
            )
        )
        return 0
    print(
        f"{'side':>5} {'raw':>10} {'image blob':>11} {'mask blob':>10} {'objects':>8} "
        f"{'images.raw rec':>15} {'claim-checked':>13} {'fingerprint rec':>16} {'prediction rec':>15}"
    )
    for f in figures.values():
        print(
            f"{f.side:5d} {f.raw_bytes:10d} {f.image_blob_bytes:11d} {f.mask_blob_bytes:10d} {f.objects:8d} "
            f"{f.image_record_bytes:15d} {f.claim_checked!s:>13} {f.fingerprint_record_bytes:16d} "
            f"{f.prediction_record_bytes:15d}"
        )
    print(
        f"\nfacility: {args.instruments} instruments x {args.rate:g} images/s, {args.size} px, "
        f"headroom x{args.headroom:g}"
    )
    for key, value in model.items():
        shown = _human(value) if key.endswith("bytes_per_day") or key.startswith("kafka_bytes") else value
        print(f"  {key}: {shown if isinstance(shown, str) else round(shown, 3) if isinstance(shown, float) else shown}")
    if args.pipeline_images_per_core is None:
        print("  worker_cores_needed = design_images_per_s / images_per_core  (images_per_core: bench/pipeline.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
