"""End to end: features_pipeline (data -> Spark job in local mode -> feast apply -> materialize) in a
throw-away ZenML client, from the real configs/features.yaml with a smaller dataset; then the online store
answers for a user with the values the job computed."""

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from recsys.features.definitions import USER_ACTIVITY, FeatureSpec
from recsys.features.offline import read_view
from recsys.features.online import OnlineFeatures

PROJECT_ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# Three weeks: few date partitions, so the Spark job spends its time on the computation, not on files.
TINY_DATA = {"n_users": 80, "n_items": 30, "n_events": 2000, "seed": 5, "days": 21}


def test_features_pipeline_fills_the_online_store(clean_zenml_client, spark, tmp_path):
    from pipelines.features import features_pipeline

    config = copy.deepcopy(yaml.safe_load((PROJECT_ROOT / "configs" / "features.yaml").read_text()))
    config["parameters"]["source_params"] = TINY_DATA
    path = tmp_path / "features.yaml"
    path.write_text(yaml.safe_dump(config))
    run = clean_zenml_client.get_pipeline_run(features_pipeline.with_options(config_path=str(path))().id)
    assert run.status.value == "completed"

    tables = run.steps["compute_features"].regular_outputs["feature_tables"].load()
    store = run.steps["materialize_features"].regular_outputs["feature_materialization"].load()
    assert tables["engine"] == "spark" and tables["events"] == TINY_DATA["n_events"]
    features = Path(store["features_dir"])
    assert features == Path.cwd() / "data" / "features"  # the throw-away project's, not the repo's data/
    assert pd.Timestamp(store["materialized"]["end"]) == pd.Timestamp(tables["last_snapshot"])

    table = read_view(features, USER_ACTIVITY)
    latest = table[table.event_timestamp == pd.Timestamp(tables["last_snapshot"])].set_index("user_id")
    users = list(latest.index[:3])
    online = OnlineFeatures(FeatureSpec.read(features), store["repo_path"], store["fs_yaml"], clock="snapshot")
    got = online.user_features(users)
    assert got["user_events_30d"].tolist() == latest.loc[users, "user_events_30d"].tolist()
    assert got["user_ctr_7d"].notna().any()
