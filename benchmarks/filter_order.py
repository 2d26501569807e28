"""Quality under request-time filters: what the order "rank, then filter" costs or gains.

    python benchmarks/filter_order.py [--items 10000] [--users 1500]

The serving core ranks each user's candidates once (cached until their history changes) and removes
filtered items afterwards (recsys/serving/ranked.py); before, every filter was pushed into retrieval, so the
ranker's relative features (rank among candidates, ratio to the best) were computed without the filtered
items. This scores both orders' answers the same way: run it on the current code and on an older checkout
(`PYTHONPATH=<checkout> python benchmarks/filter_order.py`) and compare. It uses only the public API, on the
benchmark bundle of benchmarks/serving_stages.py (history = train + valid; its test split is regenerated
from the same seed), k = 10, impressions not recorded:
  - none:        no request filter (the offline evaluation's case);
  - blocklist:   the 1% most popular items blocked (truth without them);
  - second page: each user's unfiltered top 10 excluded, as impression fatigue or a "more" button would
                 (truth without them);
  - context:     `category` = the category of the user's first test item, as a filtered search would
                 (truth: the test items of that category).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def scores(recs: pd.DataFrame, truth: pd.DataFrame) -> dict:
    from recsys.evaluation.metrics import ranking_metrics

    m = ranking_metrics(recs, truth, [10])
    return {"ndcg@10": m["ndcg@10"], "recall@10": m["recall@10"], "users": truth.user_id.nunique()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=1500, help="test users scored (a random sample)")
    args = parser.parse_args()
    from serving_stages import DATA, bench_bundle

    from recsys.data.splits import temporal_user_split
    from recsys.data.synthetic import generate_travel_data
    from recsys.registry.bundle import load_bundle

    path = bench_bundle(args.items)
    rec, _ = load_bundle(path)
    rec = rec.variant(filters={"record_impressions": False})
    ds = generate_travel_data(n_items=args.items, **DATA)
    test = temporal_user_split(ds.interactions, (0.8, 0.1, 0.1)).test.astype({"user_id": str, "item_id": str})
    users = sorted(set(test.user_id) & set(rec.history.users))
    users = list(np.random.default_rng(0).choice(users, min(args.users, len(users)), replace=False))
    test = test[test.user_id.isin(users)]
    print(f"bundle {path}: {len(rec.catalog)} items; {len(users)} test users; code from "
          f"{sys.modules[type(rec).__module__].__file__}")
    rows, t0 = {}, time.time()

    first = rec.recommend_batch(users, 10)
    rows["none"] = scores(first, test)

    counts = pd.Series(rec.history.to_frame().item_pos).value_counts()
    blocked = set(rec.catalog.item_ids[counts.index[: max(1, len(rec.catalog) // 100)]])
    rec.set_blocklist(blocked)
    rows["blocklist"] = scores(rec.recommend_batch(users, 10), test[~test.item_id.isin(blocked)])
    rec.set_blocklist([])

    shown = first[["user_id", "item_id"]]
    pairs = pd.MultiIndex.from_frame(shown)
    rows["second page"] = scores(rec.recommend_batch(users, 10, exclude=shown),
                                 test[~pd.MultiIndex.from_frame(test[["user_id", "item_id"]]).isin(pairs)])

    category = ds.items.astype({"item_id": str}).set_index("item_id").category
    wanted = test.groupby("user_id").item_id.first().map(category)
    lists = []
    for u in users:
        out = rec.recommend(u, 10, context={"category": wanted[u]})
        lists.append(pd.DataFrame({"user_id": u, "rank": np.arange(1, len(out) + 1),
                                   "item_id": [r["item_id"] for r in out]}))
    in_category = test[test.item_id.map(category).to_numpy() == test.user_id.map(wanted).to_numpy()]
    rows["context"] = scores(pd.concat(lists, ignore_index=True), in_category)

    print(pd.DataFrame.from_dict(rows, orient="index").round(4).to_string())
    cache = getattr(rec, "ranked", None)  # absent before the ranked-list cache
    if cache is not None:
        print(f"ranked lists: {cache.stats()}")
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
