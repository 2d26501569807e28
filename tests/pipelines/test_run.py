"""run.py's command line and the stack settings check, without running a pipeline."""

import subprocess
import sys
from pathlib import Path

import pytest

import stacks
from stacks.kubeflow import SETTINGS, MissingSettingsError, read_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT))
import run  # noqa: E402


def test_every_entry_names_a_pipeline_and_a_config_that_exist():
    import importlib

    for name, (module, function, config) in run.PIPELINES.items():
        assert hasattr(importlib.import_module(module), function), name
        assert (PROJECT_ROOT / config).is_file(), name
    for name, (module, config) in run.PROCESSES.items():
        assert callable(importlib.import_module(module).main) and (PROJECT_ROOT / config).is_file(), name


def test_an_unknown_pipeline_exits_2_naming_the_choices():
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "run.py"), "--pipeline", "nope"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "invalid choice: 'nope'" in result.stderr and "train" in result.stderr


def test_missing_config_file_exits_2(capsys):
    assert run.main(["--pipeline", "train", "--config", "configs/does_not_exist.yaml"]) == 2
    assert "does_not_exist.yaml does not exist" in capsys.readouterr().err


def test_kubeflow_stack_names_every_missing_setting(monkeypatch, capsys):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(stacks, "ensure_repository", lambda root: None)  # keep the project dir untouched
    assert run.main(["--pipeline", "train", "--stack", "kubeflow"]) == 2
    err = capsys.readouterr().err
    assert "cannot use the kubeflow stack" in err and all(name in err for name in SETTINGS)


def test_kubeflow_settings_are_checked():
    env = {"RECSYS_KUBE_CONTEXT": "ctx", "RECSYS_ARTIFACT_STORE": "s3://bucket/zenml",
           "RECSYS_CONTAINER_REGISTRY": "ghcr.io/me", "RECSYS_MLFLOW_TRACKING_URI": "https://mlflow",
           "RECSYS_MLFLOW_TRACKING_TOKEN": "{{mlflow.token}}"}
    assert read_settings(env) == env
    with pytest.raises(MissingSettingsError, match="RECSYS_CONTAINER_REGISTRY"):
        read_settings({**env, "RECSYS_CONTAINER_REGISTRY": ""})
    with pytest.raises(MissingSettingsError, match="must start with one of"):
        read_settings({**env, "RECSYS_ARTIFACT_STORE": "/local/path"})
    with pytest.raises(MissingSettingsError, match="exactly one authentication method"):
        read_settings({**env, "RECSYS_MLFLOW_USERNAME": "me"})  # token and a half user/password pair
