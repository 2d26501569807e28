"""The Spark engine and the DuckDB engine write the same tables from the same input: same rows, columns, dtypes
and values (integers and float32 lists exactly; doubles to 1e-12 relative, as float sums depend on order).
Both run recsys.features.sql; test_duckdb_job.py holds that SQL to a brute-force reference."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from recsys.features.batch import run_duckdb_job
from recsys.features.definitions import BATCH_VIEWS, PARTITION, FeatureSpec
from recsys.features.offline import read_view
from recsys.features.spark_job import run_spark_job
from tests.recsys.features.reference import edge_case_log
from tests.recsys.features.test_batch import hand_log
from tests.recsys.features.test_duckdb_job import assert_same

pytestmark = pytest.mark.slow


def both_engines(spark, interactions, items, spec, tmp_path, last=None):
    spec = spec.resolve(interactions, items)
    duck = run_duckdb_job(interactions, items, spec, tmp_path / "duckdb", last)
    spark_summary = run_spark_job(spark, interactions, items, spec, tmp_path / "spark", last)
    assert {k: duck[k] for k in spark_summary} == spark_summary  # rows per view, first and last snapshot
    return {view: (read_view(tmp_path / "duckdb", view), read_view(tmp_path / "spark", view)) for view in BATCH_VIEWS}


def test_same_tables_from_both_engines(spark, tmp_path, monkeypatch):
    """One run over the hand-made log (midnight events, multi-valued and missing attributes, missing prices),
    a random edge-case log (items absent from the items table, non-numeric prices, a user idle for 60 days, a
    single-event user and item) and three weeks of synthetic traffic: one Spark job, as each costs seconds.
    Spark's tasks write their rows in several files each (a small SEGMENTS_PER_FILE), as on large data."""
    from recsys.data.loader import load_dataset
    from recsys.features import spark_job

    monkeypatch.setattr(spark_job, "SEGMENTS_PER_FILE", 40)

    ds = load_dataset("synthetic", {"n_users": 60, "n_items": 30, "n_events": 1500, "seed": 3, "days": 21})
    hand_events, hand_items = hand_log()
    edge_events, edge_items = edge_case_log(0)
    edge_events = edge_events.assign(user_id="e-" + edge_events.user_id, item_id="e-" + edge_events.item_id)
    edge_items = edge_items.assign(item_id="e-" + edge_items.item_id)
    columns = list(hand_events.columns)
    interactions = pd.concat([ds.interactions[columns], hand_events, edge_events[columns]], ignore_index=True)
    items = pd.concat([ds.items, hand_items, edge_items], ignore_index=True)
    tables = both_engines(spark, interactions, items, FeatureSpec(), tmp_path)
    assert tables["user_affinity_daily"][0].user_id.isin(["u1", "u2", "e-u0", "e-u_single"]).sum() > 60
    for view, (ours, theirs) in tables.items():
        assert_same(view, ours, theirs)
    assert any(path.name.endswith("-001.parquet") for path in (tmp_path / "spark").glob("*/*/*.parquet"))
    for view in BATCH_VIEWS:  # the files themselves: the spec's Arrow types (list field names aside)
        schema = FeatureSpec.read(tmp_path / "spark").arrow_schema(view)
        stored = schema.remove(schema.get_field_index(PARTITION))
        found = pq.read_schema(next((tmp_path / "spark" / view).glob("*/*.parquet")))
        assert found.names == stored.names and [f.type.value_type if hasattr(f.type, "value_type") else f.type
                                                 for f in found] == \
            [f.type.value_type if hasattr(f.type, "value_type") else f.type for f in stored], view


def test_a_single_event_with_absent_types(spark, tmp_path):
    """One view, no attributes, no prices, "now" 40 days on: 30 rows each, no ratio, empty affinity view."""
    interactions = pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "event_type": ["view"],
                                 "timestamp": [pd.Timestamp("2025-05-05 23:00", tz="UTC")]})
    items = pd.DataFrame({"item_id": ["i"], "category": [None], "price": [np.nan]})
    last = int(interactions.timestamp[0].value // (86_400 * 10**9)) + 40
    for view, (ours, theirs) in both_engines(spark, interactions, items, FeatureSpec(), tmp_path, last).items():
        assert len(ours) == 30
        assert_same(view, ours, theirs)


def test_executors_need_numpy_and_pyarrow_not_the_project(tmp_path):
    """The tasks' writer travels by value: a job whose driver imports the project from a path its Python
    workers do not have (no PYTHONPATH, another working directory) still writes every view."""
    project = Path(__file__).resolve().parents[3]
    code = f"""
import sys
sys.path.insert(0, {str(project)!r})
from recsys.data.loader import load_dataset
from recsys.features.definitions import FeatureSpec
from recsys.features.spark_job import run_spark_job, spark_session
ds = load_dataset("synthetic", {{"n_users": 30, "n_items": 20, "n_events": 400, "seed": 1, "days": 10}})
spec = FeatureSpec().resolve(ds.interactions, ds.items)
spark = spark_session("local[1]", "no-project", {{"spark.sql.shuffle.partitions": 2}})
print(run_spark_job(spark, ds.interactions, ds.items, spec, {str(tmp_path / "out")!r})["rows"])
"""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    assert set(rows) == set(BATCH_VIEWS) and all(rows.values())
