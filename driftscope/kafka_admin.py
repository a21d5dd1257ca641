"""Topic creation from the registry in ``schemas.topics``: idempotent, for Tansu and real Kafka alike.

Configs are passed as the registry states them. Tansu 0.6.0 accepts every topic config we tried,
unknown names included (``retention.ms``, ``cleanup.policy=compact``, ``max.message.bytes``,
``compression.type``, ``min.insync.replicas``, ``segment.bytes``, ``bogus.config``), stores them
(DescribeConfigs returns them) and enforces none, so nothing needs dropping for it. Other Tansu
facts that shape this module: ``validate_only=True`` creates the topic anyway (so we never use it),
a topic with 0 partitions is accepted (so the registry's count is checked here, not by the broker),
and CreatePartitions is unsupported (so a topic that exists with fewer partitions is reported,
not grown).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.topics import TOPICS, Topic

__all__ = ["TopicSetupError", "TopicsReport", "ensure_topics"]

log = logging.getLogger(__name__)


class TopicSetupError(RuntimeError):
    """The broker refused to create a topic, or did not answer."""


@dataclass(frozen=True)
class TopicsReport:
    """What :func:`ensure_topics` did: topics created, found, and found with too few partitions."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    fewer_partitions: dict[str, tuple[int, int]] = field(default_factory=dict)


def ensure_topics(
    client_config: Mapping[str, Any],
    topics: Iterable[Topic] | None = None,
    *,
    replication_factor: int = -1,
    timeout: float = 30.0,
) -> TopicsReport:
    """Create every topic of ``topics`` (default: the whole registry) that does not exist yet.

    ``client_config`` is a librdkafka config (``Settings.kafka.librdkafka_config()``).
    ``replication_factor=-1`` lets the broker apply its default (Kafka >= 2.4; Tansu accepts it).
    Existing topics are left alone; one that has fewer partitions than the registry asks for is
    logged and listed in the report, because per-instrument ordering would still hold but
    parallelism would not.
    """
    wanted = list(TOPICS.values() if topics is None else topics)
    for t in wanted:
        if t.partitions < 1:
            raise TopicSetupError(f"topic {t.name} needs at least one partition, registry says {t.partitions}")
    admin = AdminClient(dict(client_config))
    try:
        present = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise TopicSetupError(f"broker did not answer a metadata request: {exc}") from exc

    report = TopicsReport()
    missing = [t for t in wanted if t.name not in present]
    for t in wanted:
        if t.name in present:
            report.existing.append(t.name)
            have = len(present[t.name].partitions)
            if have < t.partitions:
                report.fewer_partitions[t.name] = (have, t.partitions)
                log.warning("topic %s exists with %d partitions, registry wants %d", t.name, have, t.partitions)
    if not missing:
        return report

    futures = admin.create_topics(
        [NewTopic(t.name, t.partitions, replication_factor, config=dict(t.config)) for t in missing],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                report.existing.append(name)  # created concurrently by another process
                continue
            raise TopicSetupError(f"could not create topic {name}: {error.str()}") from exc
        report.created.append(name)
    log.info("created %d topics, %d existed", len(report.created), len(report.existing))
    return report
