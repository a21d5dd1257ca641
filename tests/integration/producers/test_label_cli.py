"""`driftscope label` and `label-dataset` against a real broker: the masks arrive under the right image ids."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from confluent_kafka import Consumer

from driftscope.kafka_admin import ensure_topics
from driftscope.tansu import TansuBroker
from models.data.synthetic import SyntheticSpec, generate_batch
from producers.publish import image_events
from schemas.codec import decode
from schemas.events import LabelEvent

pytestmark = pytest.mark.broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    with TansuBroker(tmp_path / "tansu") as tansu:
        ensure_topics({"bootstrap.servers": tansu.bootstrap_servers})
        yield tansu.bootstrap_servers


def _cli(broker: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS": broker, "DRIFTSCOPE_HOME": str(home),
           "DRIFTSCOPE_BLOB_URL": str(home / "blobs")}
    return subprocess.run([sys.executable, "-m", "driftscope", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def _labels(broker: str, expect: int) -> list[LabelEvent]:
    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"check-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe(["labels"])
    found: list[LabelEvent] = []
    try:
        for _ in range(120):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                event = decode(msg.value(), expected=LabelEvent)
                assert isinstance(event, LabelEvent)
                found.append(event)
            if len(found) >= expect:
                break
    finally:
        consumer.close()
    return found


def test_label_dataset_uses_the_publishers_image_ids(broker: str, tmp_path: Path) -> None:
    images, masks = generate_batch(SyntheticSpec(size=(64, 64)), 3, seed=4)
    folder = tmp_path / "annotated"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"field{i}.tif", images[i])
        tifffile.imwrite(folder / f"field{i}_mask.tif", masks[i])
    result = _cli(broker, tmp_path / "home", "label-dataset", str(folder), "--instrument", "scope-9")
    assert result.returncode == 0, result.stderr
    expected = {image_events(folder / f"field{i}.tif", instrument_id="scope-9", store=None)[0].image_id: masks[i]
                for i in range(3)}
    labels = _labels(broker, 3)
    assert {label.image_id for label in labels} == set(expected)
    for label in labels:
        assert label.mask is not None and np.array_equal(label.mask, expected[label.image_id])


def test_single_label_and_a_bad_mask(broker: str, tmp_path: Path) -> None:
    mask = np.zeros((32, 32), np.uint16)
    mask[4:10, 4:10] = 1
    tifffile.imwrite(tmp_path / "m.tif", mask)
    ok = _cli(broker, tmp_path / "home", "label", "scope-9/x.tif@0123", str(tmp_path / "m.tif"), "-i", "scope-9",
              "--annotator", "dr-who")
    assert ok.returncode == 0, ok.stderr
    (label,) = _labels(broker, 1)
    assert label.image_id == "scope-9/x.tif@0123" and label.annotator == "dr-who"
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 8, 3), np.uint8))
    bad = _cli(broker, tmp_path / "home", "label", "x", str(tmp_path / "rgb.tif"), "-i", "scope-9")
    assert bad.returncode == 2 and "2-D" in bad.stderr
