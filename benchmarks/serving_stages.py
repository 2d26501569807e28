"""In-process serving latency of the Recommender, per stage and end to end, on a 10k-item catalogue.

    python benchmarks/serving_stages.py [--items 10000] [--requests 2000] [--k 10] [--rebuild]

Stage rows are wall time from the Recommender's observer; end_to_end is wall time around `recommend`,
end_to_end_cpu the calling thread's CPU time for it (on a shared box the difference is time spent waiting for
a core). Builds (once, cached under data/bench/) a bundle trained the way the train pipeline does it (two-tower +
Faiss, item-item, co-visitation, popular, LightGBM ranker) on synthetic travel data with --items hotels,
then times `Recommender.recommend` for known users (random, with history) and for cold users (unknown ids,
half with a home-region context), one request at a time in one thread, after a warm-up. Stage times come
from the Recommender's own `observer` hook (the same one the service exports to Prometheus).

`benchmarks/serving.py` (HTTP) imports `bench_bundle()` and `measure()` from here so both report the same
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
RANKER_USERS = 4000  # users whose valid interactions label the ranker (all of them would be ~4M rows)


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


def measure(rec, users: list[str], k: int = 10, contexts: list | None = None, warmup: int = 200) -> dict:
    """Time `rec.recommend` for each user in turn (one thread). Returns {"end_to_end": ms array,
    "<stage>": ms array (requests where the stage ran)}. Impressions are not recorded while measuring, so
    repeated users see the same state."""
    rec = rec.variant(filters={"record_impressions": False})
    stages: dict[str, list[float]] = defaultdict(list)
    contexts = contexts or [None] * len(users)
    for u, c in zip(users[:warmup], contexts[:warmup]):
        rec.recommend(u, k, context=c)
    rec.observer = lambda stage, seconds, n: stages[stage].append(seconds * 1e3)
    total, cpu = [], []
    for u, c in zip(users, contexts):
        t, c0 = time.perf_counter(), time.thread_time()
        rec.recommend(u, k, context=c)
        total.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.thread_time() - c0) * 1e3)
    rec.observer = None
    out = {stage: np.asarray(v) for stage, v in stages.items()}
    out["end_to_end"] = np.asarray(total)
    out["end_to_end_cpu"] = np.asarray(cpu)  # this thread's CPU time: the part other processes cannot add
    return out


def summary(times: dict) -> pd.DataFrame:
    order = ["filter", "retrieve", "rank", "rerank", "explain", "cold_start", "recommend", "end_to_end",
             "end_to_end_cpu"]
    rows = {s: {"p50_ms": np.percentile(v, 50), "p99_ms": np.percentile(v, 99), "mean_ms": v.mean(), "n": len(v)}
            for s, v in sorted(times.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99)}
    return pd.DataFrame.from_dict(rows, orient="index").round(3)


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
    args = parser.parse_args()
    from recsys.registry.bundle import load_bundle

    path = bench_bundle(args.items, rebuild=args.rebuild)
    t0 = time.time()
    rec, _ = load_bundle(path)
    print(f"bundle {path} loaded in {time.time() - t0:.1f}s")
    rng = np.random.default_rng(1)
    known = list(rng.choice(rec.history.users, args.requests))
    cold = [f"visitor-{i}" for i in range(args.requests)]
    regions = sorted(rec.cold.values().get("home_region", [None]))
    cold_ctx = [{"home_region": regions[i % len(regions)]} if i % 2 and regions[0] else None
                for i in range(args.requests)]
    print(setup_line(rec))
    for name, users, ctx in (("known users", known, None), ("cold users", cold, cold_ctx)):
        table = summary(measure(rec, users, args.k, ctx))
        print(f"\n{name}: {args.requests} requests, k={args.k}, one thread, after 200 warm-up requests")
        print(table.to_string())


if __name__ == "__main__":
    main()
