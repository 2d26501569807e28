"""The Feast CLI inside feature_repo/ works as Feast users expect: apply, materialize, materialize-incremental,
get-online-features (on a copy of the repo whose tables the pandas job wrote)."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from recsys.features.definitions import USER_ACTIVITY, features_dir
from recsys.features.offline import read_view
from tests.feature_repo.repo import PROJECT_ROOT, copy_repo, write_features

pytestmark = pytest.mark.slow


def feast(repo, *args) -> str:
    """Run `feast ...` in `repo` like a user would (the project importable: it holds the definitions)."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "feast"), *args], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"feast {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_apply_materialize_and_read_from_the_cli(tmp_path, tiny_dataset):
    repo = copy_repo(tmp_path)
    summary = write_features(repo, tiny_dataset.interactions, tiny_dataset.items)
    last = pd.Timestamp(summary["last_snapshot"])
    assert "Created feature view user_activity_daily" in feast(repo, "apply")
    # Historical data: the first load names its window; later ones continue where the last one ended.
    fmt = "%Y-%m-%dT%H:%M:%S"
    feast(repo, "materialize", (last - pd.Timedelta(days=1)).strftime(fmt), last.strftime(fmt),
          "--views", "user_activity_daily", "--views", "user_affinity_daily", "--views", "item_popularity_daily")
    feast(repo, "materialize-incremental", (last + pd.Timedelta(hours=1)).strftime(fmt))
    table = read_view(features_dir(repo), USER_ACTIVITY)
    latest = table[table.event_timestamp == last].set_index("user_id")
    user = latest.index[0]
    out = feast(repo, "get-online-features", "-e", f"user_id={user}", "-f", "user_activity_daily:user_events_30d",
                "-f", "user_activity_daily:user_ctr_30d")
    answer = json.loads(out[out.index("{"):])
    assert answer["user_events_30d"] == [latest.loc[user, "user_events_30d"]]
