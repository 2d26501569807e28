"""recsys.registry.bundle: one immutable, self-describing directory per promoted version."""

import json

import pytest

from recsys.registry.bundle import latest_bundle, load_bundle, read_bundle_meta, save_bundle
from recsys.serving.recommender import Recommender


def test_save_then_load_gives_the_same_recommendations(tiny_recommender, tiny_dataset, tmp_path):
    tiny_recommender.version = "v1"
    path = save_bundle(tiny_recommender, tmp_path / "travel" / "v1", {"recommender/ndcg@10": 0.12}, {"seed": 3})
    assert sorted(p.name for p in path.iterdir()) == ["bundle.json", "config.json", "metrics.json", "recommender"]
    meta = json.loads((path / "bundle.json").read_text())
    assert meta["version"] == "v1" and meta["format"] == 1 and meta["created_at"].endswith("+00:00")
    assert meta["recommender_class"] == "recsys.serving.recommender.Recommender"

    loaded, meta = load_bundle(path)
    assert isinstance(loaded, Recommender) and loaded.version == "v1"
    assert meta["metrics"] == {"recommender/ndcg@10": 0.12} and meta["config"] == {"seed": 3}
    users = list(tiny_dataset.users.user_id[:5])
    assert loaded.recommend_batch(users, 5).equals(tiny_recommender.recommend_batch(users, 5))


def test_version_defaults_to_the_directory_name_and_json_is_plain(tiny_recommender, tmp_path):
    import numpy as np

    tiny_recommender.version = None
    path = save_bundle(tiny_recommender, tmp_path / "20260101T000000Z", {"a": np.float32(0.5), "b": float("nan")}, {})
    assert read_bundle_meta(path)["version"] == "20260101T000000Z"
    assert json.loads((path / "metrics.json").read_text()) == {"a": 0.5, "b": None}


def test_bundles_are_immutable(tiny_recommender, tmp_path):
    save_bundle(tiny_recommender, tmp_path / "v1", {}, {})
    with pytest.raises(FileExistsError):
        save_bundle(tiny_recommender, tmp_path / "v1", {}, {})


def test_a_failed_save_leaves_nothing_behind(tmp_path):
    class Broken:
        version = "v1"

        def save(self, path):
            path.mkdir(parents=True)
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_bundle(Broken(), tmp_path / "v1", {}, {})
    assert list(tmp_path.iterdir()) == []


def test_latest_bundle_skips_partial_and_foreign_directories(tiny_recommender, tmp_path):
    first = save_bundle(tiny_recommender, tmp_path / "a-first", {}, {})
    second = save_bundle(tiny_recommender, tmp_path / "b-second", {}, {})
    (tmp_path / ".c.partial").mkdir()
    (tmp_path / "notes").mkdir()
    assert latest_bundle(tmp_path) == second  # same second: the name breaks the tie
    meta = json.loads((first / "bundle.json").read_text())
    (first / "bundle.json").write_text(json.dumps({**meta, "created_at": "2999-01-01T00:00:00+00:00"}))
    assert latest_bundle(tmp_path) == first
    with pytest.raises(FileNotFoundError):
        latest_bundle(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="not a model bundle"):
        read_bundle_meta(tmp_path / "notes")


def test_a_published_bundle_is_found_and_pulled_from_a_shared_location(tiny_recommender, tmp_path, monkeypatch):
    """Bundles handed over through a remote location (memory:// stands in for s3://): the newest complete
    one is found there, a copy without bundle.json is not, and the pulled copy loads."""
    import uuid

    from recsys.registry.bundle import latest_shared_bundle, publish_bundle
    from recsys.storage import STATE_ROOT_ENV, locate

    monkeypatch.setenv(STATE_ROOT_ENV, f"memory://bundles-test/{uuid.uuid4().hex}")
    root = locate("data/bundles/travel", tmp_path / "writer")
    for version in ("v1", "v2"):
        shared = root.child(version)
        save_bundle(tiny_recommender, shared.local, {"v": version}, {}, version=version)
        assert publish_bundle(shared) == shared.shared
    with pytest.raises(FileExistsError):
        publish_bundle(root.child("v2"))
    half = root.child("v3")  # a copy cut off before bundle.json: not a candidate
    save_bundle(tiny_recommender, half.local, {}, {}, version="v3")
    (half.local / "bundle.json").unlink()
    half.push()

    reader = locate("data/bundles/travel", tmp_path / "reader")
    newest = latest_shared_bundle(reader)
    assert newest.shared.endswith("/v2") and not newest.local.exists()
    recommender, meta = load_bundle(newest.pull())
    assert meta["version"] == "v2" and recommender.version == "v2"
    with pytest.raises(FileNotFoundError, match="no model bundle"):
        latest_shared_bundle(locate("data/bundles/other", tmp_path / "reader"))
