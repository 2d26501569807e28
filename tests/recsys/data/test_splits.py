"""recsys.data.splits: per-user temporal split (RecBole's ratio rule) and global time split."""

import numpy as np
import pandas as pd
import pytest

from recsys.data.splits import global_time_split, holdout_sizes, split_interactions, temporal_user_split

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def user_rows(user: str, n: int, start_hour: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"user_id": user, "item_id": [f"{user}-{j}" for j in range(n)],
                         "timestamp": [T0 + pd.Timedelta(hours=start_hour + j) for j in range(n)],
                         "event_type": "click"})


@pytest.mark.parametrize("n, expected", [
    (20, (2, 2)),   # floor(2.0) each
    (25, (2, 2)),   # floor(2.5)
    (39, (3, 3)),
    (9, (1, 1)),    # 0.9 -> raised to 1 (RecBole: a fraction of one becomes one while train keeps > 1)
    (3, (1, 1)),    # test raised first (train 3 -> 2), then valid (train 2 -> 1)
    (2, (0, 1)),    # test raised (train 2 -> 1); valid is not: train must keep more than one
    (1, (0, 0)),
])
def test_holdout_sizes_follow_recbole(n, expected):
    valid, test = holdout_sizes(np.array([n]), (0.8, 0.1, 0.1))
    assert (int(valid[0]), int(test[0])) == expected


def test_temporal_user_split_keeps_each_users_order():
    inter = pd.concat([user_rows("a", 20), user_rows("b", 10, start_hour=5), user_rows("c", 1)])
    inter = inter.sample(frac=1, random_state=0)  # input order must not matter
    split = temporal_user_split(inter, (0.8, 0.1, 0.1))
    sizes = {part: getattr(split, part).groupby("user_id").size().to_dict() for part in ("train", "valid", "test")}
    assert sizes == {"train": {"a": 16, "b": 8, "c": 1}, "valid": {"a": 2, "b": 1}, "test": {"a": 2, "b": 1}}
    assert list(split.test[split.test.user_id == "a"].item_id) == ["a-18", "a-19"]
    assert list(split.valid[split.valid.user_id == "a"].item_id) == ["a-16", "a-17"]
    assert split.train.timestamp.is_monotonic_increasing


def test_equal_timestamps_keep_input_order():
    inter = user_rows("a", 10).assign(timestamp=T0)  # all at once: the input order decides
    split = temporal_user_split(inter, (0.8, 0.1, 0.1))
    assert list(split.test.item_id) == ["a-9"] and list(split.valid.item_id) == ["a-8"]


def test_global_time_split_is_a_clean_cut():
    inter = pd.concat([user_rows("a", 10), user_rows("b", 10, start_hour=3)])
    split = global_time_split(inter, (0.6, 0.2, 0.2))
    assert len(split.train) + len(split.valid) + len(split.test) == 20
    assert split.train.timestamp.max() < split.valid.timestamp.min() <= split.valid.timestamp.max() < split.test.timestamp.min()


def test_global_time_split_never_splits_a_timestamp():
    inter = user_rows("a", 10).assign(timestamp=[T0] * 5 + [T0 + pd.Timedelta(hours=1)] * 5)
    split = global_time_split(inter, (0.7, 0.2, 0.1))
    assert len(split.train) == 5 and len(split.valid) == 0 and len(split.test) == 5


@pytest.mark.parametrize("ratios", [(0.8, 0.1), (0.5, 0.5, 0.5), (0, 0.5, 0.5), (0.9, -0.1, 0.2)])
def test_bad_ratios(ratios):
    with pytest.raises(ValueError, match="split ratios"):
        split_interactions(user_rows("a", 10), "temporal_user", ratios)


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown split method 'random'"):
        split_interactions(user_rows("a", 10), "random")
