"""The ClickHouse server stopped for 60 s under a streaming worker: nothing lost, memory bounded.

Images keep arriving all through the outage (a publisher thread at a steady rate), so the worker is
under load the whole time. Checked, against real processes (Tansu, clickhouse-server 18.16, a
``driftscope worker``):

- every published image is stored exactly once after the server is back (distinct ids, no
  duplicate rows after deduplication), and none is dead-lettered;
- the worker never exits;
- the sink pauses consumption instead of buffering: while it cannot write, the worker takes no
  more images than its bounded buffers hold, far fewer than were published meanwhile;
- the worker's peak resident memory (``VmHWM``) during and after the outage stays within a fixed
  margin of the peak it reached under the same load before the outage.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Producer

from consumers.store.server_process import ClickHouseServerProcess
from driftscope.tansu import TansuBroker
from models.data.synthetic import SyntheticSpec, generate_batch
from schemas.claimcheck import image_event
from schemas.codec import encode
from schemas.events import utcnow
from streams.config import StreamsConfig
from tests.e2e.harness import StoreReader, WorkerProcess, wait_for
from tests.fixtures.clickhouse import with_database

pytestmark = [pytest.mark.slow, pytest.mark.broker, pytest.mark.clickhouse_server]

OUTAGE_S = 60.0
RATE = 12.0  # images per second, before, during and after the outage
SIZE = 128
WARMUP = 96  # a burst first: full image and sink batches, so the baseline has seen the steady-state peak
#: Headroom over the pre-outage peak. Buffering what arrives during the outage instead of pausing
#: would not fit: 720 images of 32 KiB raw, held once as records and again in the sink's batches.
MEMORY_MARGIN = 96 << 20

_DEFAULTS = StreamsConfig.model_fields
#: Images a paused worker may still take: one sink batch stuck in its retry loop plus the stream
#: buffers of its three agents (the worker runs the defaults).
PAUSE_BOUND = _DEFAULTS["sink_batch_events"].default + 3 * _DEFAULTS["stream_buffer_maxsize"].default


class SteadyPublisher(threading.Thread):
    """Publishes synthetic images to ``images.raw`` at ``rate`` per second until stopped."""

    def __init__(self, bootstrap_servers: str, rate: float, *, prefix: str) -> None:
        super().__init__(daemon=True)
        self.producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 5})
        self.rate = rate
        self.prefix = prefix
        self.pool, _ = generate_batch(SyntheticSpec(size=(SIZE, SIZE)), 16, seed=31)
        self.sent = 0
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def publish(self, n: int) -> None:
        """Queue ``n`` images now (from any thread)."""
        with self._lock:
            for _ in range(n):
                i = self.sent
                pixels = np.roll(self.pool[i % len(self.pool)], i // len(self.pool), axis=1)
                event = image_event(pixels, store=None, image_id=f"{self.prefix}-{i:05d}",
                                    instrument_id=f"scope-{i % 3}", acquired_at=utcnow())
                self.producer.produce("images.raw", key=event.instrument_id.encode(), value=encode(event))
                self.sent += 1
            self.producer.poll(0)

    def run(self) -> None:
        while not self._stop_event.wait(1 / self.rate):
            self.publish(1)

    def stop(self) -> int:
        """Stop, wait for every delivery, and return how many images were published."""
        self._stop_event.set()
        self.join()
        assert self.producer.flush(60) == 0, "some images were not delivered"
        return self.sent


def _consumed(worker: WorkerProcess) -> int:
    """Images the worker's fingerprint agent has taken from ``images.raw`` so far."""
    counters = worker.counters()["fingerprint"]
    return int(counters["processed"]) + int(counters["dead_lettered"])


def test_clickhouse_down_for_60_s_under_load_pauses_the_sink_loses_nothing_and_memory_stays_bounded(
    tansu: TansuBroker, served_blob_url: str, clickhouse_server_process: ClickHouseServerProcess, tmp_path: Path
) -> None:
    broker, server = tansu.bootstrap_servers, clickhouse_server_process
    store_url = with_database(server.url, "outage60")
    reader = StoreReader(store_url)
    worker = WorkerProcess(tmp_path, bootstrap_servers=broker, blob_url=served_blob_url, store_url=store_url,
                           name="outage-60s", args=["--agents", "fingerprint,segment,sink"]).start()
    publisher = SteadyPublisher(broker, RATE, prefix="down")
    try:
        publisher.publish(WARMUP)
        assert wait_for(lambda: reader.count("predictions")[1] >= WARMUP, 300, interval=1.0)
        publisher.start()
        time.sleep(15)  # the steady load, stored as it comes
        baseline = worker.peak_rss()

        server.stop()
        stopped_at = time.monotonic()
        assert wait_for(lambda: "sink_store_unavailable" in worker.log_text(), 60, interval=0.5)
        consumed_at_stall, sent_at_stall = _consumed(worker), publisher.sent
        while time.monotonic() - stopped_at < OUTAGE_S:
            assert worker.process.running, f"the worker exited during the outage: {worker.log_text()[-2000:]}"
            time.sleep(1)
        consumed_in_outage = _consumed(worker) - consumed_at_stall
        sent_in_outage = publisher.sent - sent_at_stall
        peak_in_outage = worker.peak_rss()
        # Started again from the test's main thread: the server dies with the thread that spawned it.
        server.start()

        time.sleep(10)  # still publishing while the backlog drains
        total = publisher.stop()
        assert wait_for(lambda: reader.count("predictions")[1] >= total and reader.count("fingerprints")[1] >= total
                        and reader.count("images")[1] >= total, 600, interval=2.0)
        peak_overall = worker.peak_rss()

        assert worker.process.running, "the worker exited"
        assert reader.count("images") == (total, total)
        assert reader.count("fingerprints") == (total, total)
        assert reader.count("predictions") == (total, total)
        assert reader.query("SELECT count() AS n FROM dlq FINAL")[0]["n"] == 0
        assert "sink_store_recovered" in worker.log_text()

        mib = 1 << 20
        print(f"\nmeasured: outage {OUTAGE_S:.0f} s: published {sent_in_outage}, consumed {consumed_in_outage} "
              f"(bound {PAUSE_BOUND}); peak RSS before {baseline / mib:.0f} MiB, during "
              f"{peak_in_outage / mib:.0f} MiB, after recovery {peak_overall / mib:.0f} MiB; "
              f"{total} images stored once")
        assert sent_in_outage > PAUSE_BOUND, "too few images published to tell pausing from buffering"
        assert consumed_in_outage <= PAUSE_BOUND, (
            f"the worker kept consuming while its sink could not write: {consumed_in_outage} images")
        assert peak_in_outage < baseline + MEMORY_MARGIN
        assert peak_overall < baseline + MEMORY_MARGIN
    finally:
        if publisher.is_alive():
            publisher.stop()
        worker.stop()
