"""End-to-end throughput and latency of the streaming pipeline, next to bare onnxruntime.

One run does, in order:

1. **bare**: the serving encoder and segmenter in this process, back to back on batches of
   synthetic images (``EncoderRunner.encode`` + ``SegmenterRunner.predict``, preprocessing
   included, nothing else; U-Net calls capped at the segment step's pixel budget, as in the
   worker) with every core to itself → ``bare_images_per_s``;
2. starts a Tansu broker and one ``driftscope worker`` (every agent, embedded chDB store);
3. **throughput**: publishes ``--images`` images as fast as possible and measures publish of the
   first → the last one's prediction row in ClickHouse → ``images_per_s``, ``ratio`` to bare;
4. **latency**: publishes a paced stream at ``--load`` times that throughput and records, per image,
   publish → its prediction row appearing in ClickHouse (polled through the worker's loopback query
   page every 50 ms) → ``p50_ms``, ``p99_ms``;
5. samples each worker's RSS all along and reports the peak (``VmHWM``);
6. counts CPU time (user + system, all threads) per image in the bare run and in the worker
   processes during the throughput phase: on a machine whose cores are all busy the throughput ratio
   is about their inverse ratio (``cpu_ratio``), which holds steady when other processes share the
   cores and skew the two timed phases differently. The worker's counters page splits its CPU
   time by thread group (each agent's executor, the event loop, the process with chDB's native
   threads): ``cpu_ms_per_image_by_thread``.

``--workers N`` (N > 1) runs N ``fingerprint,segment,drift`` workers in one consumer group plus one
``sink,retrain`` worker (the embedded store has one owner): the way to use more cores than one
Python process keeps busy, since the per-object post-processing (watershed) holds the GIL.

Example::

    .venv/bin/python bench/pipeline.py --size 256
    .venv/bin/python bench/pipeline.py --size 512 --images 120 --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from driftscope.kafka_admin import ensure_topics  # noqa: E402
from driftscope.supervisor import CommandProcess  # noqa: E402
from driftscope.tansu import TansuBroker, free_port  # noqa: E402
from models.data.synthetic import SyntheticSpec, generate_batch  # noqa: E402
from models.devices import DEVICES  # noqa: E402
from models.registry import ARTIFACTS_DIR, Registry  # noqa: E402
from models.runners import EncoderRunner, SegmenterRunner  # noqa: E402
from schemas.blobstore import BlobStore  # noqa: E402
from schemas.claimcheck import image_event  # noqa: E402
from schemas.codec import encode  # noqa: E402
from schemas.events import utcnow  # noqa: E402
from streams.config import StreamsConfig, fingerprint_actors  # noqa: E402

_POOL = 16  # distinct images; the stream cycles through them under new ids


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--images", type=int, default=200, help="images in the throughput phase")
    parser.add_argument("--latency-images", type=int, default=100, help="images in the paced latency phase")
    parser.add_argument("--load", type=float, default=0.7, help="paced rate as a fraction of the measured throughput")
    parser.add_argument("--threads", type=int, default=1, help="worker: onnxruntime threads per model")
    parser.add_argument("--concurrency", type=int, default=2, help="worker: segment actors")
    parser.add_argument("--fingerprint-concurrency", type=int, default=None,
                        help="worker: fingerprint actors (default: half of --concurrency, rounded up)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per inference batch")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where the networks run, in the worker and the bare run alike")
    parser.add_argument("--workers", type=int, default=1,
                        help="processing worker processes; above 1 the sink runs in a worker of its own")
    parser.add_argument(
        "--bare-threads", type=int, default=os.cpu_count() or 1, help="bare run: onnxruntime threads per model"
    )
    parser.add_argument("--artifacts", type=Path, default=ARTIFACTS_DIR, help="baseline models to serve")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home (logs) afterwards")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a report")
    return parser.parse_args()


def bare_throughput(
    encoder: EncoderRunner, segmenter: SegmenterRunner, pool: np.ndarray, n: int
) -> tuple[float, float]:
    """Images/s of encoder + segmenter alone, on batches and calls like the worker's, and CPU ms per image.

    Batches are the segmenter's batch size; give the runners every core (``intra_op_threads``).
    """
    batch_size = segmenter.batch_size
    batches = [list(pool[(i % len(pool)) : (i % len(pool)) + batch_size]) for i in range(0, n, batch_size)]
    # The segment step caps the pixels per onnxruntime call (large images go through in smaller calls).
    per_call = max(1, StreamsConfig.model_fields["segment_pixel_budget"].default // pool[0].size)

    def segment(batch: list[np.ndarray]) -> None:
        for start in range(0, len(batch), per_call):
            segmenter.predict(batch[start:start + per_call])

    encoder.encode(batches[0])  # warm-up: first runs allocate and optimise
    segment(batches[0])
    done, started, cpu = 0, time.perf_counter(), _cpu_seconds(os.getpid())
    for batch in batches:
        encoder.encode(batch)
        segment(batch)
        done += len(batch)
    return done / (time.perf_counter() - started), (_cpu_seconds(os.getpid()) - cpu) * 1000 / done


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


class RssSampler(threading.Thread):
    """Samples a process's resident memory until stopped; ``peak`` is the highest seen (bytes)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss, _vm_hwm(self.process.pid))
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def _vm_hwm(pid: int) -> int:
    """The kernel's record of the peak resident set (catches spikes between samples)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class Bench:
    def __init__(self, args: argparse.Namespace, home: Path) -> None:
        self.args = args
        self.home = home
        self.web_port = free_port()

    def query(self, sql: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.web_port}/driftscope/query/?" + urllib.parse.urlencode({"sql": sql})
        with urllib.request.urlopen(url, timeout=30) as response:
            return list(json.loads(response.read())["rows"])

    def snapshot(self) -> dict[str, Any]:
        """The counters page of the worker serving queries: per-agent counters, CPU seconds per thread group."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/driftscope/counters/", timeout=30) as response:
            return dict(json.loads(response.read()))

    @staticmethod
    def agents(snapshot: dict[str, Any]) -> dict[str, Any]:
        """Per-agent batch sizes, step latency and retries."""
        keys = ("processed", "batch_size_mean", "latency_ms_p50", "latency_ms_p99", "retries")
        return {name: {k: agent[k] for k in keys} for name, agent in snapshot["agents"].items()}

    def providers(self, timeout: float = 30.0) -> dict[str, str]:
        """The onnxruntime provider of each served model, from the workers' status files.

        A worker writes its first status file a few seconds after it starts: a short run may end sooner.
        """
        deadline = time.monotonic() + timeout
        while True:
            found: dict[str, str] = {}
            for status in sorted((self.home / "workers").glob("*.json")):
                found.update(json.loads(status.read_text()).get("providers", {}))
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    def count(self, prefix: str) -> int:
        return int(self.query(f"SELECT count() AS n FROM predictions WHERE image_id LIKE '{prefix}-%'")[0]["n"])

    def seen(self, prefix: str) -> set[str]:
        return {r["image_id"] for r in self.query(f"SELECT image_id FROM predictions WHERE image_id LIKE '{prefix}-%'")}

    def wait_count(self, prefix: str, n: int, timeout: float) -> float:
        """When the n-th row is there. Each poll is a query the worker answers with the cores it is
        being measured on, so polls are 0.5 s apart until the last tenth, then 50 ms."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = self.count(prefix)
            if count >= n:
                return time.perf_counter()
            time.sleep(0.05 if count >= 0.9 * n else 0.5)
        raise TimeoutError(f"only {self.count(prefix)} of {n} '{prefix}' predictions after {timeout:.0f} s")


def frames(pool: np.ndarray, prefix: str, n: int) -> list[tuple[str, bytes, bytes]]:
    out = []
    for i in range(n):
        event = image_event(
            pool[i % len(pool)],
            store=None,
            image_id=f"{prefix}-{i:06d}",
            instrument_id=f"scope-{i % 6}",
            acquired_at=utcnow(),
        )
        out.append((event.image_id, event.instrument_id.encode(), encode(event)))
    return out


def main() -> None:
    args = parse_args()
    home = Path(tempfile.mkdtemp(prefix="ds-bench-"))
    try:
        result = run(args, home)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"images {args.size}x{args.size}, worker threads {args.threads}, concurrency {args.concurrency} "
        f"(fingerprint {result['fingerprint_actors']}), batch {args.batch_size}"
    )
    print(f"onnxruntime providers: worker {result['providers']['worker']}, bare {result['providers']['bare']}")
    print(f"bare onnxruntime (encoder + segmenter): {result['bare_images_per_s']:.2f} images/s")
    print(f"end to end (publish -> prediction row): {result['images_per_s']:.2f} images/s  ratio {result['ratio']:.3f}")
    print(f"CPU per image: bare {result['bare_cpu_ms_per_image']:.1f} ms, worker processes "
          f"{result['worker_cpu_ms_per_image']:.1f} ms, cpu_ratio {result['cpu_ratio']:.3f} (what the throughput ratio "
          f"tends to when every core is busy; it is steadier when other work shares the machine)")
    print(f"latency at {args.load:.0%} load: p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms")
    by_thread = result["cpu_ms_per_image_by_thread"]
    print("CPU ms per image by thread group of the worker serving queries: " + ", ".join(
        f"{group} {ms:.1f}" for group, ms in sorted(by_thread.items(), key=lambda item: -item[1])))
    print(f"worker peak RSS: {result['peak_rss_mib']:.0f} MiB (all processes: "
          f"{result['peak_rss_mib_all_workers']:.0f} MiB); counters of the worker serving queries:")
    for name, agent in result["agents"].items():
        fields = (f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in agent.items())
        print(f"  {name:12s} " + ", ".join(fields))


def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    blob_url = str(home / "blobs")
    registry = Registry(BlobStore(blob_url))
    registry.bootstrap_from_baseline(args.artifacts)
    pool, _ = generate_batch(SyntheticSpec(size=(args.size, args.size)), _POOL, 0)
    bare_encoder = EncoderRunner(registry.load_verified("encoder"), intra_op_threads=args.bare_threads,
                                 batch_size=args.batch_size, device=args.device)
    bare_segmenter = SegmenterRunner(registry.load_verified("segmenter"), intra_op_threads=args.bare_threads,
                                     batch_size=args.batch_size, device=args.device)
    bare, bare_cpu_ms = bare_throughput(bare_encoder, bare_segmenter, pool, max(64, args.images // 2))

    bench = Bench(args, home)
    with TansuBroker(home / "tansu") as broker:
        ensure_topics({"bootstrap.servers": broker.bootstrap_servers})
        env = {
            **os.environ,
            "DRIFTSCOPE_HOME": str(home),
            "DRIFTSCOPE_BLOB_URL": blob_url,
            "DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "DRIFTSCOPE_CLICKHOUSE_URL": f"chdb://{home / 'chdb'}",
            "DRIFTSCOPE_LOG_LEVEL": "WARNING",
        }
        argv = [
            str(Path(sys.executable).with_name("driftscope")),
            "worker",
            "--name",
            "bench",
            "--web-port",
            str(bench.web_port),
            "--threads",
            str(args.threads),
            "--concurrency",
            str(args.concurrency),
            "--batch-size",
            str(args.batch_size),
            "--device",
            args.device,
            *(["--fingerprint-concurrency", str(args.fingerprint_concurrency)] if args.fingerprint_concurrency else []),
        ]

        def ready() -> bool:
            try:
                bench.query("SELECT 1 AS one")
                return True
            except OSError:
                return False

        if args.workers == 1:
            workers = [CommandProcess("worker", argv, home / "worker.log", env=env, ready=ready)]
        else:
            # The embedded store has one owner: a sink worker in its own group, N processing workers.
            sink = [*argv, "--agents", "sink,retrain"]
            workers = [CommandProcess("sink", sink, home / "sink.log", env=env, ready=ready)]
            for i in range(args.workers):
                name = f"bench-{i}"
                status = home / "workers" / f"{name}.json"
                processing = [*argv[:3], name, *argv[6:], "--agents", "fingerprint,segment,drift"]
                workers.append(CommandProcess(name, processing, home / f"{name}.log", env=env, ready=status.exists))
        samplers = []
        for worker in workers:
            worker.start(timeout=180)
            assert worker.pid is not None
            samplers.append(RssSampler(worker.pid))
            samplers[-1].start()
        producer = Producer(
            {"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 2, "message.max.bytes": 16 << 20}
        )
        try:
            # Warm-up: the group has joined and every model has run once.
            for _, key, value in frames(pool, "warm", 16):
                producer.produce("images.raw", key=key, value=value)
            producer.flush(60)
            bench.wait_count("warm", 16, timeout=300)

            records = frames(pool, "tp", args.images)
            pids = [worker.pid for worker in workers if worker.pid is not None]
            cpu = sum(_cpu_seconds(pid) for pid in pids)
            threads_before = bench.snapshot()["cpu_s"]
            started = time.perf_counter()
            for _, key, value in records:
                producer.produce("images.raw", key=key, value=value)
                producer.poll(0)
            producer.flush(60)
            finished = bench.wait_count("tp", args.images, timeout=600)
            throughput = args.images / (finished - started)
            worker_cpu_ms = (sum(_cpu_seconds(pid) for pid in pids) - cpu) * 1000 / args.images
            after = bench.snapshot()
            agents = bench.agents(after)
            by_thread = {
                group: (seconds - threads_before.get(group, 0.0)) * 1000 / args.images
                for group, seconds in after["cpu_s"].items()
            }

            latencies = paced_latencies(
                bench, producer, frames(pool, "lat", args.latency_images), rate=args.load * throughput
            )
            providers = bench.providers()
        finally:
            peaks = [sampler.stop() for sampler in samplers]
            for worker in reversed(workers):
                worker.stop(timeout=60)
    return {
        "size": args.size,
        "images": args.images,
        "images_per_s": throughput,
        "bare_images_per_s": bare,
        "ratio": throughput / bare,
        "bare_cpu_ms_per_image": bare_cpu_ms,
        "worker_cpu_ms_per_image": worker_cpu_ms,
        "cpu_ratio": bare_cpu_ms / worker_cpu_ms,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "latency_load_images_per_s": args.load * throughput,
        "peak_rss_mib": max(peaks) / 2**20,
        "peak_rss_mib_all_workers": sum(peaks) / 2**20,
        "workers": args.workers,
        "worker_threads": args.threads,
        "concurrency": args.concurrency,
        "fingerprint_actors": fingerprint_actors(args.concurrency, args.fingerprint_concurrency),
        "batch_size": args.batch_size,
        "bare_threads": args.bare_threads,
        "providers": {"worker": providers,
                      "bare": {"segmenter": bare_segmenter.provider, "encoder": bare_encoder.provider}},
        "agents": agents,
        "cpu_ms_per_image_by_thread": by_thread,
    }


def paced_latencies(
    bench: Bench, producer: Producer, records: list[tuple[str, bytes, bytes]], rate: float
) -> list[float]:
    """Publish ``records`` at ``rate``/s; per image, ms from publish to its prediction row."""
    published: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            now = time.perf_counter()
            for image_id in bench.seen("lat") - seen.keys():
                seen[image_id] = now
            if len(seen) == len(records):
                return
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    interval, start = 1.0 / max(rate, 0.1), time.perf_counter()
    for i, (image_id, key, value) in enumerate(records):
        time.sleep(max(0.0, start + i * interval - time.perf_counter()))
        published[image_id] = time.perf_counter()
        producer.produce("images.raw", key=key, value=value)
        producer.poll(0)
    producer.flush(60)
    poller.join(timeout=300)
    done.set()
    missing = len(records) - len(seen)
    if missing:
        raise TimeoutError(f"{missing} latency images never reached the store")
    return [(seen[i] - published[i]) * 1000 for i in published]


if __name__ == "__main__":
    main()
