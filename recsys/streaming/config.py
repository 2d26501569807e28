"""The stream's configuration: configs/stream.yaml, overridden by environment variables.

Where this sits: the consumer (`python -m recsys.streaming.consumer`), the replayer and the service's Kafka
producer read their connection settings from here, so pointing them at a production cluster (bootstrap
servers, SASL/SSL, topic and group names) is a config or environment change, never a code change. The
environment wins over the file; an empty variable counts as unset (null). Secrets (the SASL password) are
meant to come from the environment, not from the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "stream.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaSettings(_Section):
    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port...]")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, GSSAPI")
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    client_id: str = "recsys-stream"

    def client_config(self) -> dict:
        """Keyword arguments every kafka-python client takes (producer, consumer, admin)."""
        config = {"bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()],
                  "security_protocol": self.security_protocol, "client_id": self.client_id}
        for key in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password", "ssl_cafile", "ssl_certfile",
                    "ssl_keyfile"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config


class ConsumerSettings(_Section):
    group_id: str = "recsys-stream"
    group_instance_id: str | None = Field(None, description="static membership (KIP-345): a restart under the "
                                          "same id takes its partitions back without a group rebalance")
    max_batch_events: int = Field(20_000, ge=1)
    max_batch_seconds: float = Field(1.0, gt=0)
    max_poll_records: int = Field(5_000, ge=1)
    max_poll_interval_ms: int = Field(300_000, ge=1_000)
    session_timeout_ms: int = Field(10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(3_000, ge=100)
    fetch_max_wait_ms: int = Field(100, ge=0)
    retry_seconds: float = Field(2.0, gt=0, description="pause before re-reading after a failed batch or commit")


class StateSettings(_Section):
    repo_path: str = "feature_repo"
    fs_yaml: str = "feature_store.yaml"
    max_events: int = Field(200, ge=1, description="events kept per user row")
    cache_users: int = Field(50_000, ge=0, description="rows of owned users kept in memory (0: read every batch)")
    counters: bool = True
    vector: bool = True
    derived_seconds: float = Field(5.0, ge=0, description="counters and vectors written at most this often "
                                   "(and before every commit); 0: every batch")


class ArchiveSettings(_Section):
    root: str | None = Field("data/events", description="date-partitioned Parquet; null: no archive")
    fsync: bool = True
    roll_seconds: float = Field(30.0, gt=0, description="buffered events are written (and offsets committed) "
                                "at least this often")
    roll_events: int = Field(200_000, ge=1, description="... or when this many are buffered")


class ModelSettings(_Section):
    model: str | None = Field(None, description="models:/<name>@<alias> or a bundle path; null: no live vector")
    tracking_uri: str = "sqlite:///data/mlflow/mlflow.db"
    cache_dir: str = "data/stream/bundles"
    reload_seconds: float = Field(60.0, ge=0, description="how often to look for a promoted version (0: never)")


class MetricsSettings(_Section):
    port: int = Field(9108, ge=0, le=65535, description="Prometheus /metrics port; 0: no metrics server")
    host: str = "0.0.0.0"


class StreamConfig(_Section):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topic: str = "recsys.events"
    dlq_topic: str | None = Field(None, description="default <topic>.dlq")
    partitions: int = Field(4, ge=1, description="partitions when the dev tools create the topic")
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @property
    def dlq(self) -> str:
        return self.dlq_topic or f"{self.topic}.dlq"


# Environment variable -> (section, key); section None = top level. Names shared with the service
# (bentos/settings.py) mean the same thing there, so one environment configures both.
ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka", "bootstrap_servers"),
    "KAFKA_SECURITY_PROTOCOL": ("kafka", "security_protocol"),
    "KAFKA_SASL_MECHANISM": ("kafka", "sasl_mechanism"),
    "KAFKA_SASL_USERNAME": ("kafka", "sasl_plain_username"),
    "KAFKA_SASL_PASSWORD": ("kafka", "sasl_plain_password"),
    "KAFKA_SSL_CAFILE": ("kafka", "ssl_cafile"),
    "KAFKA_SSL_CERTFILE": ("kafka", "ssl_certfile"),
    "KAFKA_SSL_KEYFILE": ("kafka", "ssl_keyfile"),
    "RECSYS_FEEDBACK_TOPIC": (None, "topic"),
    "RECSYS_DLQ_TOPIC": (None, "dlq_topic"),
    "RECSYS_STREAM_GROUP": ("consumer", "group_id"),
    "RECSYS_STREAM_INSTANCE_ID": ("consumer", "group_instance_id"),
    "RECSYS_FEATURE_REPO": ("state", "repo_path"),
    "RECSYS_FEATURE_STORE_YAML": ("state", "fs_yaml"),
    "RECSYS_EVENT_ARCHIVE": ("archive", "root"),
    "RECSYS_STREAM_MODEL": ("model", "model"),
    "MLFLOW_TRACKING_URI": ("model", "tracking_uri"),
    "RECSYS_STREAM_METRICS_PORT": ("metrics", "port"),
}
_PATHS = (("state", "repo_path"), ("archive", "root"), ("model", "cache_dir"))


def kafka_from_env(bootstrap_servers: str, environ: dict | None = None) -> KafkaSettings:
    """Kafka connection settings from the KAFKA_* variables alone (the service, which has no stream.yaml)."""
    environ = os.environ if environ is None else environ
    values = {key: environ[name] for name, (section, key) in ENV.items()
              if section == "kafka" and environ.get(name)}
    return KafkaSettings.model_validate({**values, "bootstrap_servers": bootstrap_servers})


def load_config(path: str | Path | None = None, environ: dict | None = None, **overrides) -> StreamConfig:
    """The file (RECSYS_STREAM_CONFIG, default configs/stream.yaml) with environment overrides, then
    `overrides` ({section: {key: value}} or top-level values; what tests and benchmarks set). Relative paths
    resolve against the project root, as the pipelines' do."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get("RECSYS_STREAM_CONFIG") or DEFAULT_CONFIG)
    data = yaml.safe_load(path.read_text()) or {}
    for name, (section, key) in ENV.items():
        if name in environ:
            target = data.setdefault(section, {}) if section else data
            target[key] = environ[name] or None
    for key, value in overrides.items():
        if isinstance(value, dict):
            data[key] = {**(data.get(key) or {}), **value}
        else:
            data[key] = value
    config = StreamConfig.model_validate(data)
    for section, key in _PATHS:
        part = getattr(config, section)
        value = getattr(part, key)
        if value is not None and not Path(value).is_absolute():
            setattr(part, key, str(PROJECT_ROOT / value))
    tracking = config.model.tracking_uri
    if tracking.startswith("sqlite:///") and not tracking.startswith("sqlite:////"):
        config.model.tracking_uri = "sqlite:///" + str(PROJECT_ROOT / tracking[len("sqlite:///"):])
    return config
