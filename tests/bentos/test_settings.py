"""The serving configuration surface (bentos/serving.yaml + environment) and the model references."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bentos import settings as settings_module
from bentos.settings import DEFAULT_CONFIG, PROJECT_ROOT, load_settings
from bentos.sources import kind, parse_mlflow, resolve


def test_the_shipped_config_is_valid_and_serves_the_promoted_alias():
    s = load_settings(DEFAULT_CONFIG, environ={})
    assert s.model == "models:/travel-recommender@production"
    assert s.tracking_uri == f"sqlite:///{PROJECT_ROOT / 'data/mlflow/mlflow.db'}"  # resolved to the project
    assert s.log_dir == str(PROJECT_ROOT / "data/serving/logs")
    assert s.event_log == str(PROJECT_ROOT / "data/serving/events.jsonl") and s.workers == 1
    assert not s.experiment.active and s.shadow is None and s.kafka_bootstrap_servers is None
    assert s.in_bento["model"].startswith("bento:")


def test_environment_overrides_and_empty_means_unset(tmp_path):
    env = {"RECSYS_MODEL": "bento:m:1", "RECSYS_RELOAD_INTERVAL": "2.5", "RECSYS_EXPERIMENT": "e",
           "RECSYS_TREATMENT_MODEL": "models:/m@challenger", "RECSYS_TREATMENT_SHARE": "0.2",
           "KAFKA_BOOTSTRAP_SERVERS": "", "MLFLOW_TRACKING_URI": "http://mlflow:5000", "RECSYS_LOG_DIR": str(tmp_path),
           "RECSYS_EVENT_LOG": "", "RECSYS_WORKERS": "2"}
    s = load_settings(DEFAULT_CONFIG, environ=env)
    assert (s.model, s.reload_interval_seconds, s.tracking_uri) == ("bento:m:1", 2.5, "http://mlflow:5000")
    assert s.experiment.active and s.experiment.treatment_share == 0.2
    assert s.kafka_bootstrap_servers is None and s.log_dir == str(tmp_path)
    assert s.event_log is None and s.workers == 2  # several workers share the state: no Kafka needed


@pytest.mark.parametrize("text", ["model: x\ntracking_uri: y\nmodle: z\n",           # misspelt key
                                  "model: x\ntracking_uri: y\nexperiment: {treatment_share: 2}\n"])
def test_bad_config_is_rejected(tmp_path, text):
    path = tmp_path / "serving.yaml"
    path.write_text(text)
    with pytest.raises(ValidationError):
        load_settings(path, environ={})


def test_inside_a_bento_the_packed_model_is_served(monkeypatch):
    monkeypatch.setattr(settings_module, "running_from_bento", lambda: True)
    s = load_settings(DEFAULT_CONFIG, environ={})
    assert s.model == "bento:travel-recommender:latest" and s.reload_interval_seconds == 0
    assert load_settings(DEFAULT_CONFIG, environ={"RECSYS_MODEL": "/x"}).model == "/x"  # env still wins


def test_model_references(bundles):
    assert kind("models:/a@b") == "mlflow" and kind("bento:a:1") == "bento" and kind("/data/x") == "path"
    assert parse_mlflow("models:/travel-recommender@production") == ("travel-recommender", "production")
    with pytest.raises(ValueError):
        parse_mlflow("models:/no-alias")
    one = resolve(str(bundles["v1"]), "unused")
    assert one.version == "v1" and one.key == str(bundles["v1"].resolve())
    assert resolve(str(bundles["root"]), "unused").version == "v1"  # a root: its newest bundle
    with pytest.raises(FileNotFoundError):
        resolve(str(bundles["root"] / "missing"), "unused")
