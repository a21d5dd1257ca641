"""The shell recipe in docs/instruments.md builds frames driftscope decodes, and a broker carries them.

The script is taken from the document itself, so the documented recipe cannot rot unnoticed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Consumer, Producer

from schemas.codec import decode
from schemas.events import ImageEvent
from schemas.topics import Topic
from tests.fixtures.broker import consume, consumer_config, create_topics, producer_config

DOC = Path(__file__).resolve().parents[3] / "docs" / "instruments.md"

pytestmark = pytest.mark.skipif(not (shutil.which("zstd") and shutil.which("xxd")), reason="needs zstd and xxd")


def _script(tmp_path: Path) -> Path:
    blocks = re.findall(r"```sh\n(#!/bin/sh\n# make_frame\.sh.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/instruments.md should hold exactly one make_frame.sh block"
    path = tmp_path / "make_frame.sh"
    path.write_text(blocks[0])
    return path


def _frame(tmp_path: Path, pixels: np.ndarray, image_id: str) -> bytes:
    raw = tmp_path / "tile.raw"
    raw.write_bytes(pixels.astype("<u2").tobytes())
    height, width = pixels.shape
    result = subprocess.run(["sh", str(_script(tmp_path)), str(raw), str(height), str(width), "scope-sh", image_id],
                            capture_output=True, check=True)
    return result.stdout


def test_documented_shell_frame_decodes_to_the_same_pixels(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 65535, size=(40, 24)).astype(np.uint16)
    event = decode(_frame(tmp_path, pixels, "scope-sh/0001"), expected=ImageEvent)
    assert isinstance(event, ImageEvent)
    assert (event.image_id, event.instrument_id, event.shape) == ("scope-sh/0001", "scope-sh", (40, 24))
    assert event.pixels is not None
    np.testing.assert_array_equal(event.pixels, pixels)


@pytest.mark.broker
def test_a_foreign_producer_frame_arrives_intact(tansu_broker: str, tmp_path: Path) -> None:
    topic = f"wire-{uuid.uuid4().hex[:8]}"
    create_topics(tansu_broker, [Topic(topic, 1, "instrument_id", "wire test")])
    pixels = np.arange(16 * 16, dtype=np.uint16).reshape(16, 16)
    producer = Producer(producer_config(tansu_broker))
    producer.produce(topic, _frame(tmp_path, pixels, "scope-sh/0002"), b"scope-sh",
                     headers=[("ds-type", b"ImageEvent"), ("ds-schema-version", b"1")])
    assert producer.flush(30) == 0
    consumer = Consumer(consumer_config(tansu_broker))
    consumer.subscribe([topic])
    [message] = consume(consumer, 1)
    consumer.close()
    event = decode(message.value(), expected=ImageEvent)
    assert isinstance(event, ImageEvent) and event.pixels is not None
    np.testing.assert_array_equal(event.pixels, pixels)
