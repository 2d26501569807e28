"""configs/stream*.yaml validate against recsys.streaming.config (every key known: a misspelt key fails
instead of being ignored), the environment overrides the file, and Kafka security settings reach clients."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from recsys.streaming.config import PROJECT_ROOT, kafka_from_env, load_config

CONFIGS = sorted((PROJECT_ROOT / "configs").glob("stream*.y*ml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_stream_configs_validate(path):
    config = load_config(path, environ={})
    assert config.dlq == f"{config.topic}.dlq" or config.dlq_topic
    repo = Path(config.state.repo_path)
    assert repo.is_absolute() and (repo / config.state.fs_yaml).is_file()  # relative paths: the project's


def test_environment_overrides_and_client_config(tmp_path):
    environ = {"KAFKA_BOOTSTRAP_SERVERS": "k1:9093, k2:9093", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
               "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "svc", "KAFKA_SASL_PASSWORD": "s3",
               "RECSYS_FEEDBACK_TOPIC": "prod.events", "RECSYS_EVENT_ARCHIVE": "",
               "RECSYS_STREAM_METRICS_PORT": "9200"}
    config = load_config(environ=environ)
    assert config.topic == "prod.events" and config.dlq == "prod.events.dlq" and config.metrics.port == 9200
    assert config.archive.root is None  # an empty variable is null: no archive
    client = config.kafka.client_config()
    assert client["bootstrap_servers"] == ["k1:9093", "k2:9093"] and client["security_protocol"] == "SASL_SSL"
    assert (client["sasl_mechanism"], client["sasl_plain_username"], client["sasl_plain_password"]) == \
        ("SCRAM-SHA-512", "svc", "s3")
    assert kafka_from_env("b:1", environ).client_config()["sasl_plain_password"] == "s3"  # the service's producer
    assert "ssl_cafile" not in client


def test_unknown_keys_fail(tmp_path):
    path = tmp_path / "stream.yaml"
    path.write_text(yaml.safe_dump({"consumer": {"max_batch_event": 10}}))
    with pytest.raises(ValidationError, match="max_batch_event"):
        load_config(path, environ={})
