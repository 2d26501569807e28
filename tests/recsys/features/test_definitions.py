"""Feature definitions and the Feast environment files: one spec round-trips, the repo's YAMLs resolve."""

from pathlib import Path

import pytest

from recsys.features.definitions import (
    BATCH_VIEWS,
    PUSH_VIEWS,
    USER_AFFINITY,
    USER_COUNTERS,
    FeatureSpec,
    default_spec,
    features_dir,
)
from recsys.features.store import store_yaml

REPO = Path(__file__).resolve().parents[3] / "feature_repo"


def test_the_spec_round_trips_through_its_file(tmp_path):
    spec = default_spec()
    assert spec.resolved
    spec.write(tmp_path)
    assert FeatureSpec.read(tmp_path) == spec
    with pytest.raises(FileNotFoundError, match="python run.py --pipeline features"):
        FeatureSpec.read(tmp_path / "nowhere")


def test_every_view_has_a_schema_with_unique_names():
    spec = default_spec()
    names = [name for view in (*BATCH_VIEWS, *PUSH_VIEWS) for name in spec.names(view)]
    assert len(names) == len(set(names)), "feature names must be unique across views (Feast joins by name)"
    assert spec.names(USER_AFFINITY)[0] == "user_category_share_1d"
    assert "rt_click_1h" in spec.names(USER_COUNTERS)
    schema = spec.arrow_schema(USER_AFFINITY)
    assert str(schema.field("user_category_share_7d").type) == "list<item: float>"
    assert schema.names[-1] == "date" and str(schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"


def test_features_dir_follows_the_repo_or_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("RECSYS_FEATURES_DIR", raising=False)
    assert features_dir(tmp_path / "feature_repo") == tmp_path / "data" / "features"
    monkeypatch.setenv("RECSYS_FEATURES_DIR", str(tmp_path / "shared"))
    assert features_dir(tmp_path / "feature_repo") == tmp_path / "shared"


def test_environment_files_name_their_missing_variables(monkeypatch):
    assert store_yaml(REPO).name == "feature_store.yaml"
    monkeypatch.delenv("RECSYS_REDIS", raising=False)
    with pytest.raises(RuntimeError, match="RECSYS_REDIS"):
        store_yaml(REPO, "feature_store_redis.yaml")
    monkeypatch.setenv("RECSYS_REDIS", "127.0.0.1:6379")
    assert store_yaml(REPO, "feature_store_redis.yaml").is_file()
    with pytest.raises(FileNotFoundError, match="no Feast config"):
        store_yaml(REPO, "feature_store_nope.yaml")
