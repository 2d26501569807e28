"""Inference-stage steps called directly: batch_predict writes files, load_promoted_bundle finds bundles."""

import pandas as pd
import pytest

from recsys.registry.bundle import save_bundle
from recsys.registry.mlflow_registry import log_run, register_bundle
from steps.inference import batch_predict, load_promoted_bundle


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_batch_predict_writes_k_unknown_items_per_user(tiny_recommender, tiny_dataset, tmp_path, suffix):
    ds = tiny_dataset
    users = pd.concat([ds.users, pd.DataFrame({"user_id": ["brand-new"]})], ignore_index=True)
    output = tmp_path / "out" / f"recs{suffix}"
    recs = batch_predict.entrypoint(tiny_recommender, ds.interactions, users, k=4, output_path=str(output))

    if suffix == ".csv":
        written = pd.read_csv(output, dtype={"user_id": str, "item_id": str})
    else:
        written = pd.read_parquet(output)
    assert list(written.columns) == ["user_id", "rank", "item_id", "score", "source", "stage", "model_version"]
    assert len(written) == len(recs) == 4 * len(users)
    assert set(written.user_id) == set(users.user_id)
    assert (written.groupby("user_id").size() == 4).all()
    known = written.merge(ds.interactions[["user_id", "item_id"]], on=["user_id", "item_id"])
    assert known.empty
    assert set(written[written.user_id == "brand-new"].stage) == {"cold_start"}


def test_batch_predict_adds_only_interactions_newer_than_the_history(tiny_recommender, tiny_dataset, tmp_path):
    ds = tiny_dataset
    user = ds.interactions.user_id.iloc[0]
    before = len(tiny_recommender.history.items(user))
    latest = ds.interactions.timestamp.max()
    new_event = ds.interactions[ds.interactions.user_id == user].tail(1).assign(
        timestamp=latest + pd.Timedelta(days=1), item_id=ds.items.item_id.iloc[-1])
    known = pd.concat([ds.interactions, new_event], ignore_index=True)
    recs = batch_predict.entrypoint(tiny_recommender, known, ds.users, 3, [user], str(tmp_path / "r.csv"))
    assert len(tiny_recommender.history.items(user)) == before + 1  # the old ones were not added twice
    assert ds.items.item_id.iloc[-1] not in set(recs.item_id) and list(recs.user_id.unique()) == [user]


def test_load_promoted_bundle_from_mlflow_then_from_the_fallback(tiny_recommender, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tiny_recommender.version = "v1"
    bundle = save_bundle(tiny_recommender, tmp_path / "bundles" / "travel" / "v1", {}, {})
    register_bundle(uri, log_run(uri, "travel", {}, {}, artifacts_dir=bundle), "travel", alias="production")

    loaded, info = load_promoted_bundle.entrypoint("travel", "production", str(tmp_path / "dl"), None, uri)
    assert loaded.version == "v1" and (tmp_path / "dl" / "travel" / "1" / "bundle" / "bundle.json").is_file()
    assert (info["mlflow_version"], info["bundle_version"]) == ("1", "v1")
    times = tiny_recommender.history.to_frame().t  # no recorded data window: the history's span
    assert pd.Timestamp(info["data_window"]["end"]).timestamp() == pytest.approx(times.max())

    with pytest.raises(Exception):  # no such alias and no fallback
        load_promoted_bundle.entrypoint("travel", "staging", str(tmp_path / "dl"), None, uri)
    fallback, info = load_promoted_bundle.entrypoint("travel", "staging", str(tmp_path / "dl"),
                                                     str(tmp_path / "bundles"), uri)
    assert fallback.version == "v1" and info["mlflow_version"] is None
