"""CPU time per image of each piece of the fingerprint and segment steps, one thread, no streaming.

Where ``bench/pipeline.py`` says how much CPU the worker spends per image and in which threads,
this says what inside the two image steps costs it: the functions the steps call, on the same
synthetic images, each timed on its own with onnxruntime on one thread (as in the worker). The sum
is what the worker would spend without Kafka, Faust, the sink and the drift agent.

It then runs the two steps themselves (``Segmenter.process``, ``Fingerprinter.process``) on batches
of encoded image records, with the worker's actors on threads (``--concurrency`` segment actors and
the fingerprint actors that go with them) and nothing else: no broker, no Faust, no sink, no drift
agent. Their images/s next to bare onnxruntime in the same run (``bench/pipeline.py``'s bare run) is
the ceiling of the pipeline's ratio on this machine, since streaming only adds CPU on top.

    .venv/bin/python -m bench.steps
    .venv/bin/python -m bench.steps --size 512 --json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.pipeline import bare_throughput
from models.data.synthetic import SyntheticSpec, generate_batch
from models.imagestats import image_stats
from models.registry import ARTIFACTS_DIR
from models.runners import encoder_input, instances_from_probability
from schemas.blobstore import BlobStore
from schemas.claimcheck import array_to_blob, image_event
from schemas.codec import decode, encode
from schemas.events import utcnow
from streams.config import fingerprint_actors
from streams.drift.evaluation import ServedModels
from streams.fingerprint import Fingerprinter
from streams.messages import RawMessage
from streams.objects import measure_objects
from streams.segment import Segmenter, mean_confidence, mean_entropy
from streams.serving import ModelSlot


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--images", type=int, default=16, help="distinct synthetic images")
    parser.add_argument("--repeats", type=int, default=5, help="passes over the images per piece")
    parser.add_argument("--batch-size", type=int, default=8, help="images per onnxruntime call")
    parser.add_argument("--concurrency", type=int, default=2, help="segment actors of the steps-alone run")
    parser.add_argument("--throughput-images", type=int, default=400,
                        help="images of the steps-alone and bare runs (0 skips them)")
    parser.add_argument("--artifacts", type=Path, default=ARTIFACTS_DIR, help="baseline models")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    return parser.parse_args()


def cpu_ms_per_image(run: Callable[[], object], images: int, repeats: int) -> float:
    """Process CPU time of ``run`` (which handles ``images`` images) per image, after a warm-up call."""
    run()
    started = time.process_time()
    for _ in range(repeats):
        run()
    return (time.process_time() - started) * 1000 / (repeats * images)


def image_records(size: int, count: int) -> tuple[list[np.ndarray], list[bytes]]:
    """``count`` synthetic images and their encoded ``images.raw`` records (pixels inline)."""
    pool, _ = generate_batch(SyntheticSpec(size=(size, size)), count, 0)
    images = list(pool)
    frames = [encode(image_event(image, store=None, image_id=f"bench-{i}", instrument_id="bench",
                                 acquired_at=utcnow())) for i, image in enumerate(images)]
    return images, frames


def measure(
    args: argparse.Namespace, home: Path, served: ServedModels, images: list[np.ndarray], frames: list[bytes]
) -> dict[str, float]:
    encoder, segmenter = served.encoder, served.segmenter
    blobs = BlobStore(str(home / "blobs"))
    batches = [images[i:i + args.batch_size] for i in range(0, len(images), args.batch_size)]
    probabilities = [p for batch in batches for p in segmenter.predict(batch)]
    labels = [instances_from_probability(p) for p in probabilities]

    def each(step: Callable[..., object], *columns: list[np.ndarray] | list[bytes]) -> Callable[[], object]:
        return lambda: [step(*row) for row in zip(*columns, strict=True)]

    n, repeats = len(images), args.repeats
    return {
        "decode": cpu_ms_per_image(each(decode, frames), n, repeats),
        "encoder_resize": cpu_ms_per_image(
            each(lambda image: encoder_input(image, encoder.in_channels, encoder.input_size), images), n, repeats),
        "encoder_with_resize": cpu_ms_per_image(lambda: [encoder.encode(b) for b in batches], n, repeats),
        "image_stats": cpu_ms_per_image(each(image_stats, images), n, repeats),
        "image_archive": cpu_ms_per_image(
            each(lambda image: array_to_blob(image, blobs, prefix="images"), images), n, repeats),
        "unet_with_preprocessing": cpu_ms_per_image(lambda: [segmenter.predict(b) for b in batches], n, repeats),
        "split": cpu_ms_per_image(each(instances_from_probability, probabilities), n, repeats),
        "measurements": cpu_ms_per_image(each(measure_objects, labels, images), n, repeats),
        "uncertainty": cpu_ms_per_image(
            each(lambda p: (mean_confidence(p), mean_entropy(p)), probabilities), n, repeats),
        "mask_write": cpu_ms_per_image(
            each(lambda mask: array_to_blob(mask.astype(np.uint16), blobs, prefix="masks"), labels), n, repeats),
    }


def steps_alone(
    args: argparse.Namespace, home: Path, served: ServedModels, images: list[np.ndarray], frames: list[bytes]
) -> dict[str, float]:
    """Images/s of the two image steps with the worker's actors and nothing else, next to bare onnxruntime."""
    every_core = ServedModels.from_baseline(args.artifacts, intra_op_threads=os.cpu_count() or 1,
                                            batch_size=args.batch_size)
    bare, bare_cpu_ms = bare_throughput(every_core.encoder, every_core.segmenter, np.stack(images),
                                        args.throughput_images)
    blobs = BlobStore(str(home / "alone"))
    segmenter = Segmenter(ModelSlot(served.segmenter, served.model_version), blobs)
    fingerprinter = Fingerprinter(ModelSlot(served.encoder, served.encoder_version), blobs)
    records = [RawMessage("images.raw", 0, i, None, frames[i % len(frames)]) for i in range(args.throughput_images)]
    batches = [records[i:i + args.batch_size] for i in range(0, len(records), args.batch_size)]
    segmenter.process(batches[0])  # warm-up: first runs allocate and optimise
    fingerprinter.process(batches[0])
    cpu = time.process_time()
    for batch in batches:  # one thread: what the steps cost when nothing runs beside them
        segmenter.process(batch)
        fingerprinter.process(batch)
    serial_cpu_ms = (time.process_time() - cpu) * 1000 / len(records)
    fingerprint_threads = fingerprint_actors(args.concurrency)
    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(args.concurrency) as segment_actors, ThreadPoolExecutor(fingerprint_threads) as fingerprint:
        futures = [actors.submit(step, batch) for batch in batches
                   for actors, step in ((segment_actors, segmenter.process), (fingerprint, fingerprinter.process))]
        processed = sum(future.result().processed for future in futures)
    wall, cpu_ms = time.perf_counter() - started, (time.process_time() - cpu) * 1000 / len(records)
    if processed != 2 * len(records):
        raise RuntimeError(f"the steps processed {processed} of {2 * len(records)} records")
    return {
        "images_per_s": len(records) / wall,
        "bare_images_per_s": bare,
        "ratio": len(records) / wall / bare,
        "cpu_ms_per_image": cpu_ms,
        "one_thread_cpu_ms_per_image": serial_cpu_ms,
        "bare_cpu_ms_per_image": bare_cpu_ms,
        "segment_actors": args.concurrency,
        "fingerprint_actors": fingerprint_threads,
    }


def main() -> None:
    args = parse_args()
    # One thread per session, as in the worker; both measurements use these models and images.
    served = ServedModels.from_baseline(args.artifacts, batch_size=args.batch_size)
    images, frames = image_records(args.size, args.images)
    with tempfile.TemporaryDirectory(prefix="ds-steps-") as home:
        pieces = measure(args, Path(home), served, images, frames)
        alone = steps_alone(args, Path(home), served, images, frames) if args.throughput_images > 0 else None
    result: dict[str, object] = {
        "size": args.size,
        "cpu_ms_per_image": pieces,
        "total": sum(pieces.values()) - pieces["encoder_resize"],  # the resize is inside encoder_with_resize
        "encoder_and_unet": pieces["encoder_with_resize"] + pieces["unet_with_preprocessing"],
        "steps_alone": alone,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"CPU ms per image, {args.size}x{args.size}, one thread (encoder_with_resize includes encoder_resize):")
    for name, ms in pieces.items():
        print(f"  {name:26s} {ms:8.2f}")
    print(f"  {'all pieces':26s} {result['total']:8.2f}  (encoder + U-Net with their preprocessing: "
          f"{result['encoder_and_unet']:.2f})")
    if alone is not None:
        print(f"steps alone ({alone['segment_actors']} segment + {alone['fingerprint_actors']} fingerprint actors, "
              f"no streaming): {alone['images_per_s']:.1f} images/s, {alone['cpu_ms_per_image']:.1f} CPU ms/image "
              f"({alone['one_thread_cpu_ms_per_image']:.1f} on one thread)")
        print(f"bare onnxruntime, same run: {alone['bare_images_per_s']:.1f} images/s, "
              f"{alone['bare_cpu_ms_per_image']:.1f} CPU ms/image")
        print(f"ratio {alone['ratio']:.2f}: the most the streaming pipeline's ratio can reach here")


if __name__ == "__main__":
    main()
