"""recsys.features.history: per-user sequences in time order, unknown items ignored, bundle round trip."""

import numpy as np
import pandas as pd

from recsys.features.history import Catalog, History

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def events(rows):
    return pd.DataFrame([(u, i, T0 + pd.Timedelta(minutes=m), e) for u, i, m, e in rows],
                        columns=["user_id", "item_id", "timestamp", "event_type"])


def catalog():
    return Catalog(np.array(["a", "b", "c"], dtype=object), pd.DataFrame(index=range(3)))


def test_add_merges_in_time_order_and_weights_by_event_type():
    history = History(catalog(), {"view": 1.0, "booking": 5.0})
    history.add(events([("u", "b", 10, "view"), ("u", "a", 5, "booking")]))
    history.add(events([("u", "c", 7, "view"), ("v", "a", 1, "view")]))
    assert list(history.items("u")) == [0, 2, 1]  # a (5 min), c (7 min), b (10 min)
    assert history.matrix(["u"], use_weights=True).toarray().tolist() == [[5.0, 1.0, 1.0]]
    assert history.last_time(["u", "nobody"])[0] == (T0 + pd.Timedelta(minutes=10)).timestamp()


def test_items_outside_the_catalogue_are_ignored():
    history = History(catalog())
    history.add(events([("u", "zzz", 1, "view")]))  # only unknown items: nothing added, no error
    assert "u" not in history and len(history) == 0
    history.add(events([("u", "zzz", 1, "view"), ("u", "a", 2, "view")]))
    assert list(history.items("u")) == [0]


def test_frame_round_trip():
    history = History(catalog())
    history.add(events([("u", "b", 10, "view"), ("u", "a", 5, "view"), ("v", "c", 1, "view")]))
    again = History.from_frame(catalog(), history.to_frame())
    assert {u: list(again.items(u)) for u in again.users} == {u: list(history.items(u)) for u in history.users}
