"""A scripted canary on a live `bentoml serve` with simulated users: a better model is promoted, a worse one
rolled back, each decided by the experiment readout under configs/canary.yaml's rule.

    python benchmarks/canary_demo.py                # ~3-5 min on 2 cores; everything under a temp dir

Setup: the embedded synthetic marketplace (configs/train.yaml's sizes), split per user in time order; two
models learn from the first 90% of each user's events: the staged recommender (item-item, co-visitation,
popularity candidates, LightGBM ranker; no two-tower, to keep TensorFlow out of the demo) and a
popularity-only one. Both are scored offline on the held-out last 10% (NDCG@10, recall@10): the staged one
is the better model before any user sees it. They are registered in a temporary MLflow registry; the service
serves `models:/travel-recommender@production` to control and `@canary` to the treatment group
(RECSYS_EXPERIMENT=canary, a share of users by stable hash), polling the aliases every second.

Users: each simulated user (every user of the synthetic world, cold ones too) asks for 10 items once, looks
at the item at rank r with probability 1 / log2(r + 1) and clicks a looked-at item with the probability the
synthetic world's planted model gives that user and hotel (recsys.data.synthetic.click_probability: the rule
the training data's clicks were drawn with), the same rule whichever variant served them (seeded). The
expected click-through of each model's lists under that rule is computed offline too. Clicks go to
/feedback; the service logs impressions and feedback with the variant.

Scenario A: production = popularity, canary = staged -> readout -> promote (production alias moves).
Scenario B: production = staged, canary = popularity (a new registration) -> readout -> roll back (the canary
alias points at production again). Each scenario has its own users; the readout counts only impressions of
the versions in play (recsys.deploy.canary.experiment_log). The decision and alias moves are the functions
the deploy and canary pipelines call (recsys.deploy.canary.start / read_decision / conclude).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bentos.devserver import BentoServer  # noqa: E402
from recsys.deploy.canary import CanaryRule, conclude, read_decision, start  # noqa: E402
from recsys.registry.mlflow_registry import log_run, register_bundle, resolve_alias  # noqa: E402
from recsys.registry.promotion import promote  # noqa: E402
from recsys.serving.readout import read_log  # noqa: E402

NAME = "travel-recommender"
DATA = {"n_users": 2000, "n_items": 400, "n_events": 60000, "seed": 42}  # configs/train.yaml
RANKER = {"kind": "lightgbm", "num_rounds": 200, "early_stopping": 20, "n_seeds": 1}
POPULAR_ONLY = {"sources": {"item_item": None, "co_visitation": None, "two_tower": None, "popular": {"n": 100}}}



def examined(rank) -> np.ndarray:
    """P(a user looks at the item at `rank` (1-based)): the DCG position discount."""
    return 1.0 / np.log2(np.asarray(rank) + 1.0)


def expected_ctr(model, users: list[str], clicks: np.ndarray) -> float:
    """Mean P(click) over the top-10 lists `model` gives `users`, under `clicks` (users x items)."""
    recs = model.variant(filters={"record_impressions": False}).recommend_batch(users, k=10)
    u = recs.user_id.map({user: i for i, user in enumerate(users)}).to_numpy()
    i = recs.item_id.str[1:].astype(int).to_numpy()
    return float((examined(recs["rank"].to_numpy()) * clicks[u, i]).sum() / (10 * len(users)))


def train_models(tmp: Path):
    """(bundles, offline table, click probabilities of every world user x item, the users)."""
    from recsys import training
    from recsys.data.loader import load_dataset
    from recsys.data.synthetic import click_probability, travel_world
    from recsys.data.splits import temporal_user_split
    from recsys.evaluation.protocol import evaluate
    from recsys.registry.bundle import save_bundle

    ds = load_dataset("synthetic", DATA)
    split = temporal_user_split(ds.interactions)
    known = pd.concat([split.train, split.valid], ignore_index=True)
    gen = training.fit_candidate_generator(split.train, split.valid, ds.items, ds.users,
                                           params={"sources": {"two_tower": None}})
    ranking, _ = training.fit_ranker(gen, split.train, split.valid, ds.items, ds.users, RANKER)
    staged = training.build_recommender(gen, ranking, ds.items, ds.users, known, version="staged-1")
    pop_gen = training.fit_candidate_generator(split.train, split.valid, ds.items, ds.users, params=POPULAR_ONLY)
    popular = training.build_recommender(pop_gen, None, ds.items, ds.users, known, version="popularity-1")
    table = evaluate({"staged": staged, "popularity": popular}, split.test, k=10, n_items=len(ds.items))
    world, _ = travel_world(DATA["n_users"], DATA["n_items"], DATA["seed"])
    users = list(world.users_frame().user_id)
    clicks = click_probability(world, np.arange(len(users)))
    table["expected_ctr"] = [expected_ctr(m, users, clicks) for m in (staged, popular)]
    bundles = {"staged": save_bundle(staged, tmp / "bundles" / "staged-1", {}, {}),
               "popularity": save_bundle(popular, tmp / "bundles" / "popularity-1", {}, {}),
               "popularity-2": save_bundle(popular, tmp / "bundles" / "popularity-2", {}, {}, version="popularity-2")}
    return bundles, table, clicks, users


def register(uri: str, bundle: Path) -> str:
    version_label = bundle.name
    return register_bundle(uri, log_run(uri, NAME, {}, {}, artifacts_dir=bundle), NAME,
                           tags={"bundle_version": version_label})


def traffic(url: str, users: list[str], clicks: np.ndarray, seed: int, threads: int = 2) -> dict:
    """Every user once: /recommend, simulated clicks -> /feedback. Returns counts per variant."""
    counts: dict[str, list[int]] = {}
    lock = threading.Lock()

    def run(part: list[str], rng: np.random.Generator) -> None:
        with requests.Session() as http:
            for user in part:
                body = http.post(f"{url}/recommend", json={"user_id": user, "k": 10}, timeout=30).json()
                n_clicks = 0
                for rank, item in enumerate(body["items"], 1):
                    if rng.random() < examined(rank) * clicks[int(user[1:]), int(item["item_id"][1:])]:
                        n_clicks += 1
                        http.post(f"{url}/feedback", json={"user_id": user, "item_id": item["item_id"],
                                                            "event_type": "click"}, timeout=30).raise_for_status()
                with lock:
                    row = counts.setdefault(f"{body['variant']} ({body['model_version']})", [0, 0, 0])
                    row[0] += 1
                    row[1] += len(body["items"])
                    row[2] += n_clicks

    parts = [users[i::threads] for i in range(threads)]
    workers = [threading.Thread(target=run, args=(p, np.random.default_rng(seed + i))) for i, p in enumerate(parts)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return counts


def wait_for(url: str, user: str, version: str, timeout: float = 120.0) -> float:
    """Seconds until `user` is served `version` (the service polls the aliases)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        body = requests.post(f"{url}/recommend", json={"user_id": user, "k": 1}, timeout=30).json()
        if body["model_version"] == version:
            return time.perf_counter() - started
        time.sleep(0.5)
    raise TimeoutError(f"{user} still not served {version} after {timeout}s")


def scenario(title, url, logs, uri, users, clicks, rule, versions, seed):
    print(f"\n=== {title}")
    started = time.perf_counter()
    for variant, row in sorted(traffic(url, users, clicks, seed).items()):
        print(f"  served {variant:<34} {row[0]:>5} users, {row[1]:>6} items shown, {row[2]:>5} clicks")
    print(f"  traffic: {len(users)} users in {time.perf_counter() - started:.0f} s")
    log = read_log([str(p) for p in sorted(logs.glob("experiments-*.jsonl"))])
    decision = read_decision(log[log.user_id.isin(set(users))], "canary", versions, rule)  # not the probes
    c, t = decision.control, {"lift": np.nan, "lift_low": np.nan, "lift_high": np.nan, "z": np.nan,
                              "p_value": np.nan, **decision.treatment}
    print(f"  readout ({rule.unit}s, success = {', '.join(rule.success)}):")
    print(f"    control   {versions['control']:<14} {int(c['successes']):>5}/{int(c['trials']):<6} rate {c['rate']:.4f}")
    print(f"    treatment {versions['treatment']:<14} {int(t['successes']):>5}/{int(t['trials']):<6} rate {t['rate']:.4f}"
          f"  lift {t['lift']:+.1%} [{t['lift_low']:+.1%}, {t['lift_high']:+.1%}]  z {t['z']:+.2f}  p {t['p_value']:.3g}")
    done = conclude(uri, NAME, decision)
    print(f"  decision: {decision.action} ({decision.reason})")
    print(f"  aliases now: production -> {resolve_alias(uri, NAME, 'production')[0]}, "
          f"canary -> {resolve_alias(uri, NAME, 'canary')[0]}; {done}")
    return decision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--share", type=float, default=0.5, help="treatment share (configs/deploy_canary.yaml: 0.1; "
                                                                 "0.5 here so a few thousand users suffice)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, registry)")
    args = parser.parse_args()
    rule = CanaryRule.model_validate(yaml.safe_load((ROOT / "configs" / "canary.yaml").read_text())
                                     ["steps"]["read_canary"]["parameters"]["rule"])
    tmp = Path(tempfile.mkdtemp(prefix="canary-demo-"))
    print(f"setup: synthetic {DATA}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; rule {rule.model_dump()}; "
          f"treatment share {args.share}; a user looks at rank r with p 1/log2(r+1) and clicks with the planted "
          f"model's P(click | user, hotel)")
    t0 = time.perf_counter()
    bundles, table, clicks, users = train_models(tmp)
    print(f"\noffline: held-out last 10% per user; expected click-through of the top 10 under the click rule, "
          f"all {len(users)} users ({time.perf_counter() - t0:.0f} s to train and score):")
    print(table[["ndcg@10", "recall@10", "hit@10", "coverage@10", "expected_ctr"]].round(4).to_string())
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    v_pop, v_staged = register(uri, bundles["popularity"]), register(uri, bundles["staged"])
    promote(uri, NAME, v_pop)
    start(uri, NAME, v_staged)
    users = list(users)
    np.random.default_rng(0).shuffle(users)
    half = len(users) // 2
    env = {"RECSYS_MODEL": f"models:/{NAME}@production", "MLFLOW_TRACKING_URI": uri, "RECSYS_RELOAD_INTERVAL": "1",
           "RECSYS_EXPERIMENT": "canary", "RECSYS_TREATMENT_MODEL": f"models:/{NAME}@canary",
           "RECSYS_TREATMENT_SHARE": str(args.share), "RECSYS_LOG_DIR": str(tmp / "logs"),
           "RECSYS_CACHE_DIR": str(tmp / "cache"), "BENTOML_HOME": str(tmp / "bentoml"), "KAFKA_BOOTSTRAP_SERVERS": "",
           "RECSYS_SHADOW_MODEL": "", "BENTOML_DO_NOT_TRACK": "true"}
    server = BentoServer(env, tmp / "serve.log").start(timeout=300)
    try:
        print(f"\nserving {server.url}: control models:/{NAME}@production (v{v_pop}), treatment @canary (v{v_staged})")
        scenario("A: canary = staged (better offline), production = popularity", server.url, tmp / "logs", uri,
                 users[:half], clicks, rule, {"control": "popularity-1", "treatment": "staged-1"}, seed=1)
        from recsys.serving.experiments import Experiment

        experiment = Experiment("canary", {"control": 1 - args.share, "treatment": args.share})
        probes = [f"probe-{i}" for i in range(100)]  # users of no scenario, to watch the swaps
        control_user = next(u for u in probes if experiment.assign(u) == "control")
        treatment_user = next(u for u in probes if experiment.assign(u) == "treatment")
        print(f"  control users served staged-1 after {wait_for(server.url, control_user, 'staged-1'):.1f} s")
        v_worse = register(uri, bundles["popularity-2"])
        start(uri, NAME, v_worse)
        print(f"\ncanary -> v{v_worse} (popularity, registered again); treatment users served it after "
              f"{wait_for(server.url, treatment_user, 'popularity-2'):.1f} s")
        scenario("B: canary = popularity (worse offline), production = staged", server.url, tmp / "logs", uri,
                 users[half:], clicks, rule, {"control": "staged-1", "treatment": "popularity-2"}, seed=2)
        print(f"  treatment users served staged-1 again after {wait_for(server.url, treatment_user, 'staged-1'):.1f} s")
    finally:
        server.stop()
        print(f"\nload {os.getloadavg()[0]:.1f}; total {time.perf_counter() - t0:.0f} s; "
              f"python -m recsys.serving.readout --log '{tmp}/logs/experiments-*.jsonl' reads the raw log"
              + (f" (kept: {tmp})" if args.keep else ""))
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
