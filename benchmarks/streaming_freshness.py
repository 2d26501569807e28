"""Freshness for benchmarks/streaming.py (section 3): an event produced -> visible in /recommend over HTTP.

Setup: a model bundle trained here on configs/train.yaml's synthetic data (LightGBM ranker, no two-tower:
minutes, not hours), `bentoml serve` with 2 workers in Kafka mode reading each user's row from the Redis online
store (KAFKA_BOOTSTRAP_SERVERS, RECSYS_FEATURE_REPO, RECSYS_FEATURE_STORE_YAML: what bentos/settings.py
reads), the stream consumer (in this process) writing those rows, and the replayer producing the days after
the training window at a steady rate in the background. A probe: a known user's top item, a `view` of it
produced (acknowledged), then /recommend on new connections (spread over the workers) until four answers in a
row lack the item (the seen filter; the bundle has impression fatigue off, or polling alone would hide the
item); the time from before the send to the first of those answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]


def train_bundle(root: Path) -> tuple[Path, list[str]]:
    """A bundle of configs/train.yaml's data with twice the users (and events): the replayer's background
    traffic is for the first half (its own data), the probes are the most active users of the second half, so
    nothing but the probe's own event changes their lists."""
    import yaml

    from recsys import training
    from recsys.data.loader import load_dataset
    from recsys.data.splits import temporal_user_split
    from recsys.registry.bundle import save_bundle

    params = yaml.safe_load((ROOT / "configs" / "train.yaml").read_text())["parameters"]["source_params"]
    background_users = int(params.get("n_users", 2000))
    params = {**params, "n_users": 2 * background_users, "n_events": 2 * int(params.get("n_events", 60_000))}
    ds = load_dataset("synthetic", params)
    split = temporal_user_split(ds.interactions)
    sources = {"sources": {"two_tower": None, "item_item": {"n": 100}, "co_visitation": {"n": 50},
                           "popular": {"n": 20}}}
    generator = training.fit_candidate_generator(split.train, split.valid, ds.items, ds.users, params=sources)
    ranking, _ = training.fit_ranker(generator, split.train, split.valid, ds.items, ds.users,
                                     {"num_rounds": 50, "early_stopping": 0, "n_seeds": 1})
    # Impression fatigue off: the probes poll /recommend, and a thrice-shown item would vanish without any event.
    serving = {"filters": {"max_impressions": 0}}
    rec = training.build_recommender(generator, ranking, ds.items, ds.users, ds.interactions, {"serving": serving},
                                     "fresh-v1")
    bundle = save_bundle(rec, root / "bundles" / "fresh-v1", {}, {"data": params}, version="fresh-v1")
    active = ds.interactions.user_id.value_counts()
    quiet = [u for u in active.index if int(u[1:]) >= background_users]  # ids u00000.. from the generator
    return bundle, quiet[:400]


def _items(answer: dict) -> list[str]:
    return [i["item_id"] for i in answer["items"]]


def _recommend(url: str, user: str) -> dict:
    r = requests.post(url + "/recommend", json={"user_id": user, "k": 10}, timeout=10)
    r.raise_for_status()
    return r.json()


def run(args, broker, repo: Path, root: Path, consumer_config, run_consumer, load) -> None:
    from bentos.devserver import BentoServer
    from recsys.streaming.broker import create_topics
    from recsys.streaming.events import make_event
    from recsys.streaming.producer import EventProducer

    started = time.perf_counter()
    bundle, users = train_bundle(root)
    print(f"  bundle trained in {time.perf_counter() - started:.0f} s ({bundle.name}, no two-tower)", flush=True)
    topic = "fresh"
    create_topics(broker.bootstrap, {topic: args.partitions, f"{topic}.dlq": 1})
    env = {"RECSYS_MODEL": str(bundle), "BENTOML_HOME": str(root / "bentoml"), "RECSYS_LOG_DIR": str(root / "logs"),
           "RECSYS_CACHE_DIR": str(root / "cache"), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
           "RECSYS_RELOAD_INTERVAL": "0", "RECSYS_EXPERIMENT": "", "RECSYS_TREATMENT_MODEL": "",
           "RECSYS_SHADOW_MODEL": "", "BENTOML_DO_NOT_TRACK": "true", "RECSYS_WORKERS": "2",
           "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "RECSYS_FEEDBACK_TOPIC": topic,
           "RECSYS_FEATURE_REPO": str(repo), "RECSYS_FEATURE_STORE_YAML": "feature_store_redis.yaml",
           "RECSYS_EVENT_LOG": str(root / "events.log")}
    server = BentoServer(env, root / "serve.log").start(timeout=300)
    stream_yaml = root / "fresh.yaml"
    stream_yaml.write_text(f'{{"kafka": {{"bootstrap_servers": "{broker.bootstrap}"}}, "topic": "{topic}"}}')
    replayer = None
    seen: list[float] = []  # produced -> visible, seconds
    done = threading.Event()

    def probes(probe) -> bool:  # runs in run_consumer's wait loop, with the consumer applying in its thread
        nonlocal replayer
        if replayer is None:
            replayer = subprocess.Popen(
                [sys.executable, "-m", "recsys.streaming.replay", "--rate", str(args.freshness_rate), "--days",
                 "400", "--timestamps", "now", "--config", str(stream_yaml)], cwd=ROOT,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get(
                    "PYTHONPATH"))))}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            threading.Thread(target=measure, daemon=True).start()
        return done.is_set()

    def measure():
        producer = EventProducer(topic, {"bootstrap_servers": [broker.bootstrap]}, linger_ms=0)
        try:
            time.sleep(5)  # the background rate is flowing
            for user in users[:args.probes]:
                top = _items(_recommend(server.url, user))
                if not top:
                    continue
                t0 = time.perf_counter()
                producer.send(make_event(user, top[0], "view"))
                streak, first = 0, None
                while streak < 4 and time.perf_counter() - t0 < 10:
                    now = time.perf_counter()
                    if top[0] in _items(_recommend(server.url, user)):
                        streak, first = 0, None
                    else:
                        streak, first = streak + 1, first or now
                seen.append((first - t0) if streak >= 4 else float("inf"))
        finally:
            producer.close()
            done.set()

    try:
        probe, _ = run_consumer(consumer_config(topic), probes, timeout=args.probes * 15 + 120)
    finally:
        if replayer is not None:
            replayer.terminate()
            replayer.wait(timeout=30)
        server.stop()
    got = np.array(seen or [float("nan")]) * 1000
    late = int(np.isinf(got).sum())
    print(f"  freshness over HTTP (2 workers, Redis, background {args.freshness_rate:,.0f} events/s, {len(got)} "
          f"probes): p50 {np.percentile(got, 50):.0f} ms, p99 {np.percentile(got, 99):.0f} ms, max "
          f"{got.max():.0f} ms{f', {late} not visible within 10 s' if late else ''}; consumer event age p50 "
          f"{np.percentile(probe.ages or [0], 50) * 1000:.0f} ms ({load()})", flush=True)
