"""The PySpark job and the pandas job write the same tables from the same input: same rows, same columns and
dtypes, same values (integers and lists exactly; means to 1e-12 relative, as float sums depend on order)."""

import numpy as np
import pandas as pd
import pytest

from recsys.features.batch import compute_tables
from recsys.features.definitions import BATCH_VIEWS, ENTITY_OF, EVENT_TIMESTAMP, FeatureSpec
from recsys.features.offline import read_view, write_arrow_tables
from recsys.features.spark_job import run_spark_job
from tests.recsys.features.test_batch import hand_log

pytestmark = pytest.mark.slow


def both_engines(spark, interactions, items, spec, tmp_path):
    spec = spec.resolve(interactions, items)
    write_arrow_tables(compute_tables(interactions, items, spec), tmp_path / "pandas", spec)
    run_spark_job(spark, interactions, items, spec, tmp_path / "spark")
    return {view: (read_view(tmp_path / "pandas", view), read_view(tmp_path / "spark", view)) for view in BATCH_VIEWS}


def assert_same(view, ours, theirs):
    assert list(ours.columns) == list(theirs.columns), view
    assert len(ours) == len(theirs) > 0, view
    keys = [ENTITY_OF[view], EVENT_TIMESTAMP]
    pd.testing.assert_frame_equal(ours[keys], theirs[keys])
    for column in ours.columns:
        a, b = ours[column], theirs[column]
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True, err_msg=f"{view}.{column}")
        elif a.dtype == object and any(isinstance(v, np.ndarray) for v in a):
            for x, y in zip(a, b):
                assert (x is None) == (y is None), f"{view}.{column}: null differs"
                if x is not None:
                    assert x.dtype == y.dtype == np.float32 and np.array_equal(x, y), f"{view}.{column}"
        else:
            assert a.dtype == b.dtype and (a == b).all(), f"{view}.{column}"


def test_same_tables_from_both_engines(spark, tmp_path):
    """One run over the hand-made log (midnight events, multi-valued and missing attributes, missing prices)
    plus three weeks of synthetic traffic: one Spark job, as each costs seconds of fixed overhead."""
    from recsys.data.loader import load_dataset

    ds = load_dataset("synthetic", {"n_users": 60, "n_items": 30, "n_events": 1500, "seed": 3, "days": 21})
    hand_events, hand_items = hand_log()
    interactions = pd.concat([ds.interactions[hand_events.columns], hand_events], ignore_index=True)
    items = pd.concat([ds.items, hand_items], ignore_index=True)
    tables = both_engines(spark, interactions, items, FeatureSpec(), tmp_path)
    assert tables["user_affinity_daily"][0].user_id.isin(["u1", "u2"]).any()
    for view, (ours, theirs) in tables.items():
        assert_same(view, ours, theirs)
