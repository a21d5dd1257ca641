"""The synthetic instrument publishes its stream in order, with late labels, to a real broker."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer

from models.data.synthetic import SyntheticSpec
from producers.instrument import InstrumentConfig, SyntheticInstrument
from producers.kafka import EventProducer
from schemas.codec import decode
from schemas.events import ImageEvent, LabelEvent
from schemas.topics import Topic
from tests.fixtures.broker import consume, consumer_config, create_topics

pytestmark = pytest.mark.broker


def test_images_in_order_and_delayed_labels(tansu_broker: str) -> None:
    images, labels = f"sim-images-{uuid.uuid4().hex[:6]}", f"sim-labels-{uuid.uuid4().hex[:6]}"
    create_topics(tansu_broker, [Topic(images, 3, "instrument_id", "test"), Topic(labels, 1, "instrument_id", "test")])
    config = InstrumentConfig(instrument_id="synth-t", spec=SyntheticSpec(size=(32, 32)), label_fraction=0.5,
                              label_delay=3, seed=3)
    producer = EventProducer({"bootstrap.servers": tansu_broker})
    report = SyntheticInstrument(config).run(
        producer, count=12, rate=None, store=None, image_topic=images, label_topic=labels, flush_every=5
    )
    assert report.images == 12 and 0 < report.labels < 12

    consumer = Consumer(consumer_config(tansu_broker))
    consumer.subscribe([images, labels])
    messages = consume(consumer, 12 + report.labels)
    consumer.close()
    image_ids = [e.image_id for e in (decode(m.value()) for m in messages) if isinstance(e, ImageEvent)]
    label_ids = [e.image_id for e in (decode(m.value()) for m in messages) if isinstance(e, LabelEvent)]
    assert image_ids == [f"synth-t/{config.run_id}/{i:06d}" for i in range(12)]  # one key, one partition, in order
    assert len(label_ids) == report.labels and set(label_ids) <= set(image_ids)
    assert {m.key() for m in messages} == {b"synth-t"}
