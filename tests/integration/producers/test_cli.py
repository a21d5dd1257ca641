"""The operator commands end to end: exit codes, --json output, and what a plain consumer receives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from typer.testing import CliRunner

from consumers.store import open_store
from driftscope.cli import app
from models.data.dataset import write_image
from schemas.codec import decode
from schemas.events import ImageEvent
from schemas.topics import Topic
from tests.fixtures.broker import consume, consumer_config, create_topics, producer_config

REPO = Path(__file__).resolve().parents[3]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"DRIFTSCOPE_HOME": str(tmp_path / "home"), "COLUMNS": "200", **extra}


@pytest.mark.broker
def test_publish_then_replay_dry_run(tansu_broker: str, tmp_path: Path) -> None:
    topic = f"cli-images-{uuid.uuid4().hex[:8]}"
    create_topics(tansu_broker, [Topic(topic, 2, "instrument_id", "cli test")])
    folder = tmp_path / "plate"
    for i, name in enumerate(["b.tif", "a.png", "c.ome.tif"]):
        image = np.full((16, 16), 10 * i, dtype=np.uint8)
        write_image(folder / name, image, pixel_size_um=0.4 if name.endswith(".ome.tif") else None)
    env = _env(tmp_path, DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS=tansu_broker)
    runner = CliRunner()

    result = runner.invoke(app, ["publish", str(folder), "-i", "scope-c", "--topic", topic, "--json"], env=env)
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert (outcome["files"], outcome["images"], outcome["refused"]) == (3, 3, [])

    consumer = Consumer(consumer_config(tansu_broker))
    consumer.subscribe([topic])
    events = [decode(m.value()) for m in consume(consumer, 3)]
    consumer.close()
    assert all(isinstance(e, ImageEvent) for e in events)
    images = [e for e in events if isinstance(e, ImageEvent)]
    assert [Path(e.source or "").name for e in images] == ["a.png", "b.tif", "c.ome.tif"]  # name order, one key
    assert images[2].pixel_size_um == pytest.approx(0.4)

    (folder / "broken.tif").write_bytes(b"not a tiff")
    result = runner.invoke(app, ["publish", str(folder / "broken.tif"), "-i", "scope-c", "--topic", topic], env=env)
    assert result.exit_code == 1

    result = runner.invoke(app, ["publish", str(folder), "-i", "scope-c", "--topic", "no-such-topic-x"], env=env)
    assert result.exit_code == 3

    result = runner.invoke(app, ["replay", "-t", topic, "--dry-run", "--idle-timeout", "2", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["replayed"] == 3  # the refused file and the missing topic sent nothing


def test_publish_without_a_broker_exits_3(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_image(folder / "a.tif", np.zeros((16, 16), dtype=np.uint8))
    result = CliRunner().invoke(app, ["publish", str(folder), "-i", "x"], env=_env(tmp_path))
    assert result.exit_code == 3
    assert "stack up" in result.output


def _seed(url: str) -> None:
    with open_store(url) as store:
        store.migrate()
        store.insert("drift_events", [{
            "event_id": uuid.uuid4(), "detector": "adwin", "signal": "p50", "instrument_id": "scope-q",
            "model_version": "v1", "statistic": 3.5, "threshold": 1.0, "window_size": 32,
            "first_seen_at": datetime(2026, 1, 1, tzinfo=UTC), "detected_at": datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
            "evidence": ["a", "b"], "severity": "high",
        }])  # fmt: skip


@pytest.mark.clickhouse_server
def test_query_on_a_server_is_read_only_by_the_servers_setting(server_url: str, tmp_path: Path) -> None:
    _seed(server_url)
    env = _env(tmp_path, DRIFTSCOPE_CLICKHOUSE_URL=server_url)
    runner = CliRunner()
    result = runner.invoke(app, ["query", "--json", "SELECT instrument_id, severity, evidence FROM drift_events"],
                           env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"instrument_id": "scope-q", "severity": "high", "evidence": ["a", "b"]}]

    result = runner.invoke(app, ["query", "-f", "csv", "SELECT signal, statistic FROM drift_events"], env=env)
    assert result.stdout.splitlines() == ["signal,statistic", "p50,3.5"]

    # Looks like a read to any parser, writes all the same; only the server's readonly=1 stops it.
    result = runner.invoke(app, ["query", "CREATE TABLE sneaky (x UInt8) ENGINE = Memory"], env=env)
    assert result.exit_code == 1
    result = runner.invoke(app, ["query", "INSERT INTO drift_events (detector) VALUES ('x')"], env=env)
    assert result.exit_code == 1
    with open_store(server_url) as store:
        assert store.query("SELECT count() AS n FROM drift_events")[0]["n"] == 1


def test_query_on_an_embedded_store_nobody_holds(tmp_path: Path) -> None:
    # chDB admits one data directory per process: seed and query in processes of their own.
    url = f"chdb://{tmp_path / 'chdb'}"
    env = {**os.environ, **_env(tmp_path, DRIFTSCOPE_CLICKHOUSE_URL=url)}
    seed = f"from tests.integration.producers.test_cli import _seed; _seed({url!r})"
    subprocess.run([sys.executable, "-c", seed], check=True, env=env, cwd=REPO)
    command = [sys.executable, "-m", "driftscope", "query", "--json"]
    read = subprocess.run([*command, "SELECT detector, window_size FROM drift_events"],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout) == [{"detector": "adwin", "window_size": 32}]
    write = subprocess.run([*command, "DROP TABLE drift_events"], capture_output=True, text=True, env=env, cwd=REPO)
    assert write.returncode == 1


@pytest.mark.broker
def test_status_shows_committed_offsets_per_group_and_partition(tansu_broker: str, tmp_path: Path) -> None:
    topic = f"cli-status-{uuid.uuid4().hex[:8]}"
    group = f"cli-status-group-{uuid.uuid4().hex[:6]}"
    create_topics(tansu_broker, [Topic(topic, 2, "instrument_id", "status test")])
    producer = Producer(producer_config(tansu_broker))
    for _ in range(5):
        producer.produce(topic, b"x", b"k", partition=0)
        producer.flush(10)  # one batch per message: Tansu's end offset is then right
    consumer = Consumer(consumer_config(tansu_broker, group))
    consumer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    consumer.close()

    env = _env(tmp_path, DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS=tansu_broker)
    result = CliRunner().invoke(app, ["status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    [row] = [r for r in shown["lag"] if r["group"] == group]
    assert (row["topic"], row["partition"], row["committed"], row["end"], row["lag"]) == (topic, 0, 3, 5, 2)
    assert shown["store_error"]  # no store in this home: reported, not fatal

    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 0 and group in result.stdout


def test_status_without_a_broker_exits_3(tmp_path: Path) -> None:
    assert CliRunner().invoke(app, ["status"], env=_env(tmp_path)).exit_code == 3


@pytest.mark.broker
def test_watch_once_publishes_new_files_and_remembers_them(tansu_broker: str, tmp_path: Path) -> None:
    topic = f"cli-watch-{uuid.uuid4().hex[:8]}"
    create_topics(tansu_broker, [Topic(topic, 1, "instrument_id", "watch test")])
    inbox = tmp_path / "inbox"
    write_image(inbox / "one.tif", np.ones((16, 16), dtype=np.uint8))
    env = _env(tmp_path, DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS=tansu_broker)
    command = ["watch", str(inbox), "-i", "scope-w", "--topic", topic, "--once", "--settle", "0.5", "--json"]

    first = CliRunner().invoke(app, command, env=env)
    assert first.exit_code == 0, first.output
    assert [json.loads(line)["published"] for line in first.stdout.splitlines()] == [str(inbox / "one.tif")]

    write_image(inbox / "two.png", np.ones((16, 16), dtype=np.uint8))
    second = CliRunner().invoke(app, command, env=env)
    assert second.exit_code == 0, second.output
    assert [json.loads(line)["published"] for line in second.stdout.splitlines()] == [str(inbox / "two.png")]
    assert list((tmp_path / "home" / "watch").glob("scope-w-*.jsonl"))


@pytest.mark.parametrize(("device", "says"), [("gpu", "choose from auto, cpu, cuda"), ("cuda", "onnxruntime-gpu")])
def test_a_worker_device_the_machine_cannot_give_is_refused_before_any_kafka(
    tmp_path: Path, device: str, says: str
) -> None:
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    # An unreachable broker: the refusal must come before the worker tries it.
    env = _env(tmp_path, DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:9")
    result = CliRunner().invoke(app, ["worker", "--device", device, "--agents", "segment"], env=env)
    assert result.exit_code == 2, result.output
    assert says in result.output
