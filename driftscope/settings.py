"""Settings: one frozen pydantic-settings model, validated at start, passed down explicitly.

Read order (later wins): defaults, the TOML file (``DRIFTSCOPE_CONFIG`` or ``<home>/driftscope.toml``),
environment variables with the ``DRIFTSCOPE_`` prefix (nested with ``__``, e.g.
``DRIFTSCOPE_KAFKA__SECURITY_PROTOCOL=SASL_SSL``). Nothing below the composition root reads the
environment: components receive the values they need.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["KafkaSettings", "Settings", "default_home", "load_settings"]


def default_home() -> Path:
    return Path(os.environ.get("DRIFTSCOPE_HOME", Path.home() / ".driftscope")).expanduser()


class KafkaSettings(BaseModel):
    """Kafka connection; everything librdkafka needs for PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL."""

    model_config = ConfigDict(frozen=True)

    bootstrap_servers: str = ""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: SecretStr | None = None
    ssl_endpoint_identification_algorithm: Literal["https", "none"] = "https"
    session_timeout_s: float = 6.0
    extra: dict[str, str] = Field(default_factory=dict, description="raw librdkafka properties, passed through")

    def librdkafka_config(self) -> dict[str, Any]:
        """The librdkafka properties for confluent-kafka clients (secrets revealed only here)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        if self.ssl_certificate_location:
            conf["ssl.certificate.location"] = self.ssl_certificate_location
        if self.ssl_key_location:
            conf["ssl.key.location"] = self.ssl_key_location
        if self.ssl_key_password is not None:
            conf["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            conf["ssl.endpoint.identification.algorithm"] = self.ssl_endpoint_identification_algorithm
        conf.update(self.extra)
        return conf


class Settings(BaseSettings):
    """Everything an operator can configure."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTSCOPE_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    home: Path = Field(default_factory=default_home)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    clickhouse_url: SecretStr | None = Field(
        default=None,
        description="clickhouse://user:pass@host:9000/db (server) or chdb:///path (embedded)",
    )
    blob_url: str | None = Field(default=None, description="a local path or an fsspec URL (s3://bucket/prefix)")
    claim_check_threshold_bytes: int = 900 * 1024
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        explicit_home = getattr(init_settings, "init_kwargs", {}).get("home")
        home = Path(explicit_home).expanduser() if explicit_home else default_home()
        config = os.environ.get("DRIFTSCOPE_CONFIG") or str(home / "driftscope.toml")
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config)
        return (init_settings, env_settings, toml, file_secret_settings)

    @property
    def resolved_blob_url(self) -> str:
        return self.blob_url or str(self.home / "blobs")

    @property
    def resolved_clickhouse_url(self) -> str:
        if self.clickhouse_url is not None:
            return self.clickhouse_url.get_secret_value()
        return f"chdb://{self.home / 'chdb'}"


def load_settings(**overrides: Any) -> Settings:
    """Settings from file and environment, with explicit overrides (CLI options) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
