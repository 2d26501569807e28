"""Small interaction data with a planted structure, shared by the core-library tests.

Two taste groups: users u0..u19 consume items a0..a9 in a fixed order, users v0..v19 consume b0..b9; a few
"hit" items (a0, b0) are popular across both. A model that learns anything recommends a-items to u-users.
"""

import numpy as np
import pandas as pd
import pytest


def make_tiny(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = []
    t0 = pd.Timestamp("2025-01-01", tz="UTC")
    for group, prefix in (("u", "a"), ("v", "b")):
        for n in range(20):
            length = 6 + n % 4
            start = rng.integers(0, 3)
            seq = [f"{prefix}{(start + j) % 10}" for j in range(length)]
            for j, item in enumerate(seq):
                rows.append((f"{group}{n}", item, t0 + pd.Timedelta(days=n, hours=j), "click"))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event_type"])
    inter = inter.drop_duplicates(["user_id", "item_id"]).sort_values("timestamp", ignore_index=True)
    items = pd.DataFrame({"item_id": [f"{p}{i}" for p in "ab" for i in range(10)],
                          "category": ["beach"] * 10 + ["ski"] * 10,
                          "stars": [3 + i % 3 for i in range(20)]})
    users = pd.DataFrame({"user_id": [f"{g}{n}" for g in "uv" for n in range(20)],
                          "region": ["north"] * 20 + ["south"] * 20})
    return inter, items, users


def per_user_split(inter: pd.DataFrame, n_valid: int = 1, n_test: int = 1):
    """Last item of each user to test, the one before to valid, the rest train."""
    pos = inter.groupby("user_id").cumcount(ascending=False)
    return inter[pos >= n_valid + n_test], inter[(pos >= n_test) & (pos < n_valid + n_test)], inter[pos < n_test]


@pytest.fixture
def tiny():
    return make_tiny()
