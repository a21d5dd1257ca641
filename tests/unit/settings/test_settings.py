"""Settings: file, environment and overrides in the documented order; secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftscope.settings import load_settings


def test_toml_in_explicit_home_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTSCOPE_CONFIG", raising=False)
    (tmp_path / "driftscope.toml").write_text('blob_url = "/data/blobs"\n[kafka]\nbootstrap_servers = "k:9092"\n')
    settings = load_settings(home=tmp_path)
    assert settings.blob_url == "/data/blobs"
    assert settings.kafka.bootstrap_servers == "k:9092"


def test_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "driftscope.toml").write_text('blob_url = "/from/file"\n')
    monkeypatch.setenv("DRIFTSCOPE_BLOB_URL", "s3://bucket/prefix")
    monkeypatch.setenv("DRIFTSCOPE_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DRIFTSCOPE_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("DRIFTSCOPE_KAFKA__SASL_USERNAME", "scope")
    monkeypatch.setenv("DRIFTSCOPE_KAFKA__SASL_PASSWORD", "hunter2-secret")
    settings = load_settings(home=tmp_path)
    assert settings.blob_url == "s3://bucket/prefix"
    conf = settings.kafka.librdkafka_config()
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.password"] == "hunter2-secret"
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    assert "hunter2-secret" not in repr(settings) and "hunter2-secret" not in str(settings.model_dump())


def test_clickhouse_url_defaults_to_embedded_and_hides_credentials(tmp_path: Path) -> None:
    assert load_settings(home=tmp_path).resolved_clickhouse_url == f"chdb://{tmp_path / 'chdb'}"
    server = load_settings(home=tmp_path, clickhouse_url="clickhouse://u:pw-secret@127.0.0.1:9000/db")
    assert server.resolved_clickhouse_url.endswith("@127.0.0.1:9000/db")
    assert "pw-secret" not in repr(server)


def test_invalid_protocol_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTSCOPE_KAFKA__SECURITY_PROTOCOL", "TELNET")
    with pytest.raises(ValueError, match="security_protocol"):
        load_settings(home=tmp_path)
