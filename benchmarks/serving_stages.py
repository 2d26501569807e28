"""In-process serving latency of the Recommender, per stage and end to end, on a 10k-item catalogue.

    python benchmarks/serving_stages.py [--items 10000] [--requests 2000] [--k 10] [--rebuild]

Builds (once, cached under data/bench/) a bundle trained the way the train pipeline does it (two-tower +
Faiss, item-item, co-visitation, popular, LightGBM ranker) on synthetic travel data with --items hotels, then
times `Recommender.recommend`, one request at a time in one thread, after 200 warm-up requests:
  - known users on a cache miss: each user's cached ranked list is dropped first, so retrieve + rank run
    (what a request costs right after the user's history changed, or before the warm-up reached them);
  - the warm-up (`Recommender.warm`: every known user's ranked list, as the service computes them in the
    background after a load), its time and the cache's memory;
  - known users on a cache hit: filter + re-rank + explain over the cached list;
  - a realistic mix: interleaved user sessions (users drawn in proportion to their activity), impressions
    recorded, 10% of answers clicked (the feedback drops that user's list), once with the list recomputed on
    the user's next request and once right after the click, untimed (what the service's warm-up thread
    does); prints each hit ratio;
  - cold users (unknown ids, half with a home-region context).
Stage rows are wall time from the Recommender's observer (the hook the service exports to Prometheus);
end_to_end is wall time around `recommend`, end_to_end_cpu the calling thread's CPU time for it (on a shared
box the difference is time spent waiting for a core).

`benchmarks/serving.py` (HTTP) imports `bench_bundle()` and `report()` from here so both print the same
in-process figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# 10k hotels; 20k users x 400k events keeps ~35 events per active user (the train config's density) and
# trains in a few minutes on 2 cores.
DATA = {"n_users": 20_000, "n_events": 400_000, "seed": 42}
RANKER_USERS = 4000
# A request that ran retrieve + rank: its list was not cached (miss), its filters left too few candidates
# (fallback) or it chose candidates whose explanations were not kept (second pass). Anything else is a hit.
COMPUTED = ("misses", "fallbacks", "explain_passes")  # users whose valid interactions label the ranker (all of them would be ~4M rows)


def bench_bundle(n_items: int = 10_000, root: Path = ROOT / "data" / "bench", rebuild: bool = False) -> Path:
    """Path of the cached benchmark bundle for an `n_items` catalogue, training it if missing."""
    from recsys.registry.bundle import META_FILE

    path = Path(root) / f"serving-{n_items}"
    if (path / META_FILE).exists() and not rebuild:
        return path
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    _train(n_items, path)
    return path


def _train(n_items: int, path: Path) -> None:
    from recsys import training
    from recsys.data.splits import temporal_user_split
    from recsys.data.synthetic import generate_travel_data
    from recsys.registry.bundle import save_bundle
    from recsys.retrieval.index import AnnIndex
    from recsys.retrieval.two_tower import TwoTowerConfig, train_two_tower

    t0 = time.time()
    ds = generate_travel_data(n_items=n_items, **DATA)
    split = temporal_user_split(ds.interactions, (0.8, 0.1, 0.1))
    print(f"[bench] data: {len(ds.interactions)} events, {len(ds.users)} users, {len(ds.items)} items "
          f"({time.time() - t0:.0f}s)", flush=True)
    config = TwoTowerConfig(epochs=6, embedding_dim=32, batch_size=1024, verbose=1)
    two_tower = train_two_tower(split.train, split.valid, ds.items, ds.users, config)
    index = AnnIndex.build(two_tower.item_embeddings, two_tower.item_ids)
    generator = training.fit_candidate_generator(split.train, split.valid, ds.items, ds.users, two_tower, index)
    print(f"[bench] candidate sources fitted ({time.time() - t0:.0f}s)", flush=True)
    rng = np.random.default_rng(0)
    valid_users = split.valid.user_id.unique()
    sample = rng.choice(valid_users, min(RANKER_USERS, len(valid_users)), replace=False)
    ranking, _ = training.fit_ranker(generator, split.train, split.valid[split.valid.user_id.isin(sample)],
                                     ds.items, ds.users, {"num_rounds": 100})
    print(f"[bench] ranker trained ({time.time() - t0:.0f}s)", flush=True)
    rec = training.build_recommender(generator, ranking, ds.items, ds.users,
                                     pd.concat([split.train, split.valid], ignore_index=True), version="bench")
    save_bundle(rec, path, {}, {"data": {"n_items": n_items, **DATA}, "ranker_users": RANKER_USERS})
    print(f"[bench] bundle {path} written ({time.time() - t0:.0f}s)", flush=True)


def measure(rec, users: list[str], k: int = 10, contexts: list | None = None, warmup: int = 200,
            miss: bool = False, click_rate: float = 0.0, refresh: bool = False, record: bool = False,
            seed: int = 0) -> dict:
    """Time `rec.recommend` for each user in turn (one thread). Returns {"end_to_end": ms array,
    "end_to_end_cpu": ms array, "hit": bool array (the user's ranked list was cached), "<stage>": ms array
    (requests where the stage ran)}. `miss`: drop the user's cached list before each call (the cost of a
    list computed on request). `click_rate`: after a request, the user clicks one of the returned items with
    this probability (record_feedback drops their cached list); `refresh`: between requests, untimed, what
    the service's warm-up thread does: the clicked user's list recomputed, lists computed on request get
    their re-rank pool explained (`Recommender.explain_deferred`). `record`:
    impressions recorded (off: repeated users see the same state)."""
    rec = rec.variant(filters={"record_impressions": record})  # shares the models, state and cached lists
    rng = np.random.default_rng(seed)
    stages: dict[str, list[float]] = defaultdict(list)
    contexts = contexts or [None] * len(users)
    for u, c in zip(users[:warmup], contexts[:warmup]):
        rec.recommend(u, k, context=c)
    rec.observer = lambda stage, seconds, n: stages[stage].append(seconds * 1e3)
    total, cpu, hit = [], [], []
    for u, c in zip(users, contexts):
        if miss:
            rec.ranked.invalidate([u])
        computed = [rec.ranked.counts[c] for c in COMPUTED]
        t, c0 = time.perf_counter(), time.thread_time()
        out = rec.recommend(u, k, context=c)
        total.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.thread_time() - c0) * 1e3)
        hit.append(computed == [rec.ranked.counts[c] for c in COMPUTED] and u in rec.history)
        clicked = click_rate and out and rng.random() < click_rate
        if clicked:
            item = out[int(rng.integers(len(out)))]["item_id"]
            rec.record_feedback({"user_id": u, "item_id": item, "event_type": "click"})
        if refresh:  # untimed, what the service's warm-up thread does between requests
            observer, rec.observer = rec.observer, None
            rec.warm([u] if clicked else [])  # also explains the pools of lists computed on request
            rec.observer = observer
    rec.observer = None
    out = {stage: np.asarray(v) for stage, v in stages.items()}
    out["end_to_end"] = np.asarray(total)
    out["end_to_end_cpu"] = np.asarray(cpu)  # this thread's CPU time: the part other processes cannot add
    out["hit"] = np.asarray(hit)
    return out


def sessions(rec, n: int, seed: int, mean_length: float = 4.0, concurrent: int = 16) -> list[str]:
    """`n` requests from interleaved user sessions: each session's user drawn in proportion to their
    history length (active users come back more), its length geometric with this mean; `concurrent`
    sessions are open at once and the next request comes from a random one of them."""
    rng = np.random.default_rng(seed)
    users = rec.history.users
    activity = np.array([len(rec.history.items(u)) for u in users], dtype=np.float64)
    p = activity / activity.sum()
    open_ = [[users[rng.choice(len(users), p=p)], rng.geometric(1 / mean_length)] for _ in range(concurrent)]
    out = []
    while len(out) < n:
        s = open_[int(rng.integers(concurrent))]
        out.append(s[0])
        s[1] -= 1
        if s[1] <= 0:
            s[0], s[1] = users[rng.choice(len(users), p=p)], rng.geometric(1 / mean_length)
    return out


def summary(times: dict) -> pd.DataFrame:
    order = ["filter", "retrieve", "rank", "rerank", "explain", "cold_start", "recommend", "end_to_end",
             "end_to_end_cpu"]
    rows = {s: {"p50_ms": np.percentile(v, 50), "p99_ms": np.percentile(v, 99), "mean_ms": v.mean(), "n": len(v)}
            for s, v in sorted(times.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)
            if s != "hit" and len(v)}
    return pd.DataFrame.from_dict(rows, orient="index").round(3)


def split(times: dict) -> pd.DataFrame:
    """End-to-end p50/p99 of the requests whose ranked list was cached (hit) and computed (miss)."""
    rows = {}
    for name, sel in (("all", np.ones_like(times["hit"])), ("hit", times["hit"]), ("miss", ~times["hit"])):
        for col in ("end_to_end", "end_to_end_cpu"):
            v = times[col][sel]
            if len(v):
                rows[f"{name} {col.replace('end_to_end', 'wall').replace('wall_cpu', 'cpu')}"] = {
                    "p50_ms": np.percentile(v, 50), "p99_ms": np.percentile(v, 99), "mean_ms": v.mean(), "n": len(v)}
    return pd.DataFrame.from_dict(rows, orient="index").round(3)


def rss_mib() -> float:
    """Resident memory of this process now (Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def report(rec, requests: int, k: int, seed: int = 1) -> None:
    """The in-process figures (both benchmark scripts print these): warm-up, known users on a miss and on a
    hit, a realistic mix, cold users."""
    rng = np.random.default_rng(seed)
    users = rec.history.users
    known = list(rng.choice(users, requests))
    print(setup_line(rec))
    print(f"\nknown users, cache miss (each user's ranked list dropped first): {requests} random users, k={k}, "
          "one thread, after 200 warm-up requests")
    print(summary(measure(rec, known, k, miss=True)).to_string())
    rss0 = rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    rec.ranked.clear()
    n = rec.warm()
    rss1 = rss_mib()
    stats = rec.ranked.stats()
    print(f"\nwarm-up (Recommender.warm, batches of 64, explanations for the re-rank pool): {n} users in "
          f"{time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU; cache {stats['entries']} lists, "
          f"{stats['bytes'] / 2**20:.1f} MiB ({stats['bytes'] / max(stats['entries'], 1) / 1024:.1f} KiB a list); "
          f"process RSS {rss0:.0f} -> {rss1:.0f} MiB")
    print(f"\nknown users, cache hit (after the warm-up): {requests} random users, k={k}")
    print(summary(measure(rec, known, k)).to_string())
    mix = sessions(rec, 2 * requests, seed)
    for refresh in (False, True):
        rec.impressions.load_frame(pd.DataFrame(columns=["user_id", "item_pos", "t"]))  # same start: no fatigue
        rec.warm()  # and every list cached again (the clicks of the previous run dropped some)
        before = dict(rec.ranked.counts)
        times = measure(rec, mix, k, click_rate=0.1, refresh=refresh, record=True, seed=seed)
        computed = {c: rec.ranked.counts[c] - before[c] for c in COMPUTED}
        how = ("between requests, untimed, what the service's warm-up thread does: the list recomputed after "
               "a click, the pools of lists computed on request explained"
               if refresh else "no refresh: the user's next request recomputes it")
        print(f"\nknown users, realistic mix: {2 * requests} requests from interleaved sessions (16 open at "
              f"once, 4 requests each on average, users drawn in proportion to their history length), "
              f"impressions recorded (fatigue applies), 10% of answers get a click ({how}): "
              f"hit ratio {times['hit'].mean():.3f} (lists computed: {computed}, counting measure's 200 untimed warm-up requests and any refresh)")
        print(split(times).to_string())
    cold = [f"visitor-{i}" for i in range(requests)]
    regions = sorted(rec.cold.values().get("home_region", [None]))
    cold_ctx = [{"home_region": regions[i % len(regions)]} if i % 2 and regions[0] else None
                for i in range(requests)]
    print(f"\ncold users: {requests} unknown ids (half with a home_region context), k={k}")
    print(summary(measure(rec, cold, k, cold_ctx)).to_string())


def setup_line(rec) -> str:
    load = os.getloadavg()
    return (f"{len(rec.catalog)} items, {len(rec.history)} users with history; {os.cpu_count()} cores "
            f"({platform.processor() or platform.machine()}), load average {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f} "
            f"(1/5/15 min, shared box); Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rebuild", action="store_true", help="retrain the benchmark bundle")
    parser.add_argument("--explain-ahead", action="store_true",
                        help="serving setting cache.explain_ahead on (deeper explanations queued ahead of a page)")
    args = parser.parse_args()
    from recsys.registry.bundle import load_bundle

    path = bench_bundle(args.items, rebuild=args.rebuild)
    t0 = time.time()
    rec, _ = load_bundle(path)
    print(f"bundle {path} loaded in {time.time() - t0:.1f}s")
    if args.explain_ahead:
        rec = rec.variant(cache={"explain_ahead": True})
    print(f"cache settings: {rec.config['cache']}")
    report(rec, args.requests, args.k)


if __name__ == "__main__":
    main()
