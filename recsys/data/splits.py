"""Train / valid / test splits of an interactions table: what each model learns from and is scored on.

Two methods, chosen by config (`split_data.method`):
- `temporal_user`: per user, interactions in time order (stable on input order for equal timestamps); the
  last share is test, the share before it valid, the rest train. The hold-out sizes follow RecBole's rule so
  figures compare with its published table (shared/QUALITY_NOTES.md): floor(ratio * n) each, raised to 1 when
  ratio * n is between 0 and 1, as long as train keeps more than one interaction. Every user's test items
  come after their train and valid items: the same position as the next events a served user makes.
- `global_time`: cut the whole table at two time quantiles: train before t1, valid in [t1, t2), test after.
  Tests models on the future as a whole (new items, trends), as a deployment would meet it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recsys.data.schema import TIMESTAMP, USER_ID, Split

SPLIT_METHODS = ("temporal_user", "global_time")


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != 3 or min(ratios) < 0 or ratios[0] <= 0 or not np.isclose(sum(ratios), 1.0):
        raise ValueError(f"split ratios must be three non-negative shares (train > 0) summing to 1, got {ratios}")
    return ratios


def holdout_sizes(n: np.ndarray, ratios: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(valid, test) counts per user of `n` interactions under RecBole's ratio rule."""
    n = np.asarray(n, dtype=np.int64)
    _, r_valid, r_test = _check_ratios(ratios)
    test = np.floor(n * r_test).astype(np.int64)
    valid = np.floor(n * r_valid).astype(np.int64)
    train = n - test - valid
    # RecBole's _calcu_split_ids: walk from the last part backwards, giving a part that would get a
    # fraction of one interaction a whole one while train keeps more than one.
    for part, ratio in ((test, r_test), (valid, r_valid)):
        bump = (train > 1) & (n * ratio > 0) & (n * ratio < 1)
        part += bump
        train -= bump
    return valid, test


def temporal_user_split(interactions: pd.DataFrame, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> Split:
    """Per-user temporal split (see the module docstring). Row order inside each part is by time."""
    df = interactions.sort_values([USER_ID, TIMESTAMP], kind="stable")
    n = df.groupby(USER_ID, sort=False)[USER_ID].transform("size").to_numpy()
    pos = df.groupby(USER_ID, sort=False).cumcount().to_numpy()
    n_valid, n_test = holdout_sizes(n, ratios)
    test = pos >= n - n_test
    valid = ~test & (pos >= n - n_test - n_valid)
    return Split(*(_by_time(df[mask]) for mask in (~test & ~valid, valid, test)))


def global_time_split(interactions: pd.DataFrame, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> Split:
    """Cut at the time quantiles of the ratios: every test interaction is later than every train one."""
    r_train, r_valid, _ = _check_ratios(ratios)
    df = _by_time(interactions)
    n = len(df)
    cut1, cut2 = int(round(n * r_train)), int(round(n * (r_train + r_valid)))
    ts = df[TIMESTAMP].to_numpy()
    # Equal timestamps never straddle a cut: move each cut to the first row of its timestamp.
    cut1 = int(np.searchsorted(ts, ts[cut1], side="left")) if cut1 < n else n
    cut2 = max(cut1, int(np.searchsorted(ts, ts[cut2], side="left")) if cut2 < n else n)
    return Split(df.iloc[:cut1], df.iloc[cut1:cut2], df.iloc[cut2:])


def split_interactions(interactions: pd.DataFrame, method: str = "temporal_user",
                       ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> Split:
    """Dispatch on `method` (one of SPLIT_METHODS)."""
    if method not in SPLIT_METHODS:
        raise ValueError(f"unknown split method {method!r}; choose one of {list(SPLIT_METHODS)}")
    split = (temporal_user_split if method == "temporal_user" else global_time_split)(interactions, ratios)
    if split.train.empty:
        raise ValueError(f"the {method} split with ratios {list(ratios)} leaves no train interactions")
    return split


def _by_time(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
