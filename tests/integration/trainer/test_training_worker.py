"""The training worker against a real Tansu broker and a real blob store, with a real (tiny) U-Net.

Counts what matters: runs executed per request, run events per run id, dead letters. The model is
deliberately tiny so a run takes seconds; the gate's outcome (promoted or rejected) is whatever
the holdout says — these tests are about delivery, idempotency and recording.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from consumers.trainer.executor import RetrainPolicy, SegmenterRetrainer
from consumers.trainer.run_record import RunOutcome, RunRecords, run_id_for
from consumers.trainer.worker import TrainingWorker
from driftscope.kafka_admin import ensure_topics
from driftscope.tansu import TansuBroker
from models.data.synthetic import SyntheticSpec, generate_batch
from models.registry import Registry
from schemas.blobstore import BlobStore
from schemas.claimcheck import array_to_blob
from schemas.codec import decode, encode
from schemas.events import DataSelection, DeadLetter, RetrainRequest, TrainingItem, TrainingRunEvent

torch = pytest.importorskip("torch", reason="the trainer needs the train extra (torch)")

pytestmark = [pytest.mark.broker, pytest.mark.torch]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    with TansuBroker(tmp_path / "tansu") as tansu:
        ensure_topics({"bootstrap.servers": tansu.bootstrap_servers})
        yield tansu.bootstrap_servers


@pytest.fixture
def seeded_store(tmp_path: Path) -> tuple[BlobStore, Registry, str]:
    """A blob store whose serving segmenter is a tiny, barely trained U-Net."""
    from models.onnx_export import export_segmenter
    from models.unet import UNet, UNetConfig, save_unet

    torch.manual_seed(0)
    torch.set_num_threads(1)
    unet = UNet(UNetConfig(base_width=4, depth=2)).eval()
    store = BlobStore(tmp_path / "blobs")
    registry = Registry(store)
    version = registry.register("segmenter", export_segmenter(unet).onnx, weights=save_unet(unet))
    registry.promote("segmenter", version.version)
    return store, registry, version.version


def _request(store: BlobStore, base: str, key: str, n: int = 8) -> RetrainRequest:
    images, masks = generate_batch(SyntheticSpec(size=(64, 64)), n, seed=7)
    items = [
        TrainingItem(image_id=f"img-{i}", image=array_to_blob(images[i], store, prefix="images"),
                     mask=array_to_blob(masks[i], store, prefix="masks"))
        for i in range(n)
    ]
    return RetrainRequest(idempotency_key=key, base_model_version=base, selection=DataSelection(items=items),
                          hyperparameters={"max_epochs": 2, "steps_per_epoch": 4, "tile": 64})


def _produce(bootstrap: str, *values: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce("retrain.requests", value, key=b"k")
    assert producer.flush(10) == 0


def _read_all(bootstrap: str, topic: str, expect: int, timeout: float = 60.0) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    found: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(found) < expect:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                found.append(msg.value() or b"")
        # a little longer, to see any message beyond what was expected
        quiet_until = time.monotonic() + 3
        while time.monotonic() < quiet_until:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                found.append(msg.value() or b"")
    finally:
        consumer.close()
    return found


class CountingExecutor:
    def __init__(self, inner: SegmenterRetrainer) -> None:
        self.inner, self.calls = inner, 0

    def run(self, request: RetrainRequest) -> RunOutcome:
        self.calls += 1
        return self.inner.run(request)


def test_same_request_twice_runs_once_and_garbage_goes_to_dlq(broker: str, seeded_store) -> None:  # type: ignore[no-untyped-def]
    store, registry, base = seeded_store
    request = _request(store, base, "drift-abc")
    _produce(broker, encode(request), b"\x00 not a frame", encode(request))
    executor = CountingExecutor(SegmenterRetrainer(store, registry, RetrainPolicy()))
    worker = TrainingWorker({"bootstrap.servers": broker}, executor, RunRecords(store))
    thread = threading.Thread(target=worker.run_forever, kwargs={"max_requests": 3})
    thread.start()
    thread.join(300)
    assert not thread.is_alive()

    assert executor.calls == 1
    runs = [decode(v) for v in _read_all(broker, "training.runs", expect=2)]
    assert len(runs) == 2  # published again on redelivery ...
    assert {r.event_id for r in runs} == {runs[0].event_id}  # ... as the same event: the sink keeps one row
    run = runs[0]
    assert isinstance(run, TrainingRunEvent)
    assert run.run_id == run_id_for("drift-abc") and run.status in {"promoted", "rejected"}, run.reason
    assert run.metrics["n_holdout"] >= 1 and "serving_dice" in run.metrics and "candidate_dice" in run.metrics
    if run.candidate_version is None:  # fine-tuning found nothing better: nothing new to publish
        assert run.status == "rejected" and "nothing better" in run.reason
        assert registry.serving("segmenter").version == base
    else:
        published = [decode(v) for v in _read_all(broker, "models.published", expect=2)]
        assert {p.version for p in published} == {run.candidate_version}
        assert (registry.serving("segmenter").version == run.candidate_version) == (run.status == "promoted")
    letters = [decode(v) for v in _read_all(broker, "retrain.requests.dlq", expect=1)]
    assert len(letters) == 1 and isinstance(letters[0], DeadLetter)
    assert letters[0].original == b"\x00 not a frame" and "frame" in letters[0].error


def test_too_few_labelled_images_is_a_recorded_failed_run(broker: str, seeded_store) -> None:  # type: ignore[no-untyped-def]
    store, registry, base = seeded_store
    _produce(broker, encode(_request(store, base, "too-few", n=2)))
    worker = TrainingWorker({"bootstrap.servers": broker}, SegmenterRetrainer(store, registry), RunRecords(store))
    worker.run_forever(max_requests=1)
    (run,) = [decode(v) for v in _read_all(broker, "training.runs", expect=1)]
    assert isinstance(run, TrainingRunEvent)
    assert run.status == "failed" and "at least 4 needed" in run.reason
    assert registry.serving("segmenter").version == base


@pytest.mark.slow
def test_trainer_killed_mid_run_completes_the_request_once(broker: str, seeded_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, _registry, base = seeded_store
    request = _request(store, base, "killed-once", n=10)
    request = request.model_copy(update={"hyperparameters": {"max_epochs": 3, "steps_per_epoch": 6, "tile": 64,
                                                              "patience": 5}})
    env = {**os.environ, "DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS": broker, "DRIFTSCOPE_BLOB_URL": str(tmp_path / "blobs"),
           "DRIFTSCOPE_HOME": str(tmp_path / "home")}
    argv = [sys.executable, "-m", "driftscope", "trainer", "--ready-file", str(tmp_path / "ready")]
    log = (tmp_path / "trainer.log").open("wb")
    first = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        _produce(broker, encode(request))
        deadline = time.monotonic() + 120
        while b" val dice " not in (tmp_path / "trainer.log").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.2)  # the first epoch is done: kill it in the middle of the run
        assert first.poll() is None, (tmp_path / "trainer.log").read_text()[-2000:]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert RunRecords(store).get("killed-once") is None
    finally:
        if first.poll() is None:
            first.kill()
    second = subprocess.run([*argv, "--max-requests", "1"], env=env, stdout=log, stderr=subprocess.STDOUT, timeout=600)
    assert second.returncode == 0, (tmp_path / "trainer.log").read_text()[-2000:]
    runs = [decode(v) for v in _read_all(broker, "training.runs", expect=1)]
    assert len(runs) == 1 and isinstance(runs[0], TrainingRunEvent)
    assert runs[0].run_id == run_id_for("killed-once") and runs[0].status in {"promoted", "rejected"}
    assert RunRecords(store).get("killed-once") is not None
