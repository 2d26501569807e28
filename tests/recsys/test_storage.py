"""recsys.storage: where handed-over state lives, and the pull / push between a shared copy and a working copy.

The shared side is fsspec's in-memory filesystem (memory://) standing in for s3:// or gs://, and a plain
directory standing in for a volume: the same calls a step makes in a Kubeflow pod."""

import uuid

import fsspec
import pytest

from recsys.storage import STATE_ROOT_ENV, Location, locate


@pytest.fixture
def remote_root(monkeypatch):
    root = f"memory://recsys-tests/{uuid.uuid4().hex}"
    monkeypatch.setenv(STATE_ROOT_ENV, root)
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_without_a_state_root_paths_start_at_the_project_and_are_not_copied(tmp_path, monkeypatch):
    monkeypatch.delenv(STATE_ROOT_ENV, raising=False)
    location = locate("data/features", tmp_path)
    assert location.local == tmp_path.resolve() / "data" / "features"
    assert location.shared == str(location.local) and not location.mirrored
    assert location.pull() == location.local and not location.local.exists()  # nothing copied, nothing made
    with pytest.raises(ValueError, match="needs the project directory"):
        locate("data/features", None)


def test_with_a_state_root_project_paths_are_mirrored_and_outside_paths_are_not(tmp_path, remote_root):
    location = locate("data/features", tmp_path)
    assert location.shared == f"{remote_root}/data/features" and location.mirrored
    outside = locate(tmp_path.parent / "volume", tmp_path)  # e.g. RECSYS_FEATURES_DIR on a mounted volume
    assert not outside.mirrored
    url = locate("gs://bucket/out.parquet", None)
    assert url.shared == "gs://bucket/out.parquet" and url.local.name == "out.parquet" and url.mirrored


def test_push_then_pull_in_a_fresh_project_replaces_the_copy_as_a_whole(tmp_path, remote_root):
    writer = locate("data/feast", tmp_path / "pod-a")
    (writer.local / "sub").mkdir(parents=True)
    (writer.local / "registry.db").write_bytes(b"v1")
    (writer.local / "sub" / "old.txt").write_text("stale")
    assert writer.push() == f"{remote_root}/data/feast"

    (writer.local / "sub" / "old.txt").unlink()  # the next writer's copy no longer has it
    (writer.local / "registry.db").write_bytes(b"v2")
    writer.push()

    reader = locate("data/feast", tmp_path / "pod-b")
    reader.local.mkdir(parents=True)
    (reader.local / "leftover.txt").write_text("from an older pull")
    assert reader.pull() == reader.local
    files = sorted(p.relative_to(reader.local).as_posix() for p in reader.local.rglob("*") if p.is_file())
    assert files == ["registry.db"] and (reader.local / "registry.db").read_bytes() == b"v2"


def test_a_single_file_round_trips_and_a_missing_one_pulls_to_nothing(tmp_path, remote_root):
    out = locate("data/batch/recs.csv", tmp_path / "a")
    out.local.parent.mkdir(parents=True)
    out.local.write_text("user_id,item_id\n")
    out.push()
    back = locate("data/batch/recs.csv", tmp_path / "b")
    assert back.pull().read_text() == "user_id,item_id\n"
    missing = locate("data/never_written", tmp_path / "b")
    assert not missing.exists() and not missing.pull().exists()
    with pytest.raises(FileNotFoundError, match="nothing to push"):
        missing.push()


def test_child_locations_follow_both_sides(tmp_path):
    parent = Location(tmp_path / "bundles", "memory://x/bundles")
    child = parent.child("model", "v1")
    assert child.local == tmp_path / "bundles" / "model" / "v1" and child.shared == "memory://x/bundles/model/v1"
