"""Streaming benchmarks: the consumer's throughput with every effect on, its lag under a steady rate, and
freshness (an event produced -> visible in /recommend over HTTP).

1. throughput: a backlog of synthetic travel events is produced to a topic of the embedded dev broker
   (recsys.streaming.broker), then one consumer (recsys.streaming.consumer, in this process) applies it:
   user rows, counters, live vectors (a two-tower of the training config's shape over the catalogue, random
   weights: the same arithmetic as a trained one), archive, commits. Events/s from its first batch to its
   last commit, per online store (sqlite, Redis on a loopback redis-server), with the time per stage.
2. lag: the consumer on Redis while the replayer (`python -m recsys.streaming.replay`, another process)
   produces at a steady rate with `--timestamps now`: messages behind and event age (event time -> applied),
   sampled every 0.5 s.
3. freshness: `bentoml serve` (2 workers) reading each user's row from the same store, the consumer and a
   steady background rate; per probe, a view of the user's top item is produced and /recommend is polled
   until the item is gone (seen filter): p50/p99 of produced -> visible. Needs the service that reads the
   rows (recsys/serving/state.py `OnlineState.use_store`); skipped with a message where it is missing.

    python benchmarks/streaming.py                                 # all, 2,000 users (configs/train.yaml's)
    python benchmarks/streaming.py --sections throughput --users 20000 --events 300000

The box is shared: the load average is printed beside every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from recsys.features.store import apply_repo  # noqa: E402
from recsys.monitoring.stream_metrics import StreamMetrics  # noqa: E402
from recsys.streaming.broker import DevBroker, create_topics  # noqa: E402
from recsys.streaming.config import load_config  # noqa: E402
from recsys.streaming.consumer import StreamConsumer  # noqa: E402
from recsys.streaming.producer import EventProducer  # noqa: E402
from recsys.streaming.replay import events_of  # noqa: E402
from tests.feature_repo.repo import RedisServer, copy_repo, write_features  # noqa: E402
from tests.recsys.streaming.processes import end_offsets  # noqa: E402


def load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def _native_crc() -> bool:
    from kafka.record import util

    return util.crc32c_c is not None


class Probe(StreamMetrics):
    """The consumer's own metrics (a private registry), plus what the benchmark reads back."""

    def __init__(self):
        from prometheus_client import CollectorRegistry

        super().__init__(registry=CollectorRegistry())
        self.first = self.last = None
        self.records = self.rows = 0
        self.ages: list[float] = []
        self.stages: dict[str, float] = {}

    def observe_batch(self, result, seconds, now):
        super().observe_batch(result, seconds, now)
        self.first = self.first or time.perf_counter() - seconds
        self.last = time.perf_counter()
        self.records += result.records
        self.rows += result.users
        self.ages += [now - s for s in result.event_seconds]
        for stage, spent in result.seconds.items():
            self.stages[stage] = self.stages.get(stage, 0.0) + spent

    def roll_seconds(self) -> dict:
        """Seconds per roll stage: derived and commit in the consumer's thread, archive and dlq in the
        background roll's (overlapping the batches)."""
        out = {}
        for family in self.stage_seconds.collect():
            for sample in family.samples:
                if sample.name.endswith("_sum") and sample.labels["stage"] in ("derived", "archive", "dlq", "commit"):
                    out[sample.labels["stage"]] = sample.value
        return out


def random_two_tower_bundle(root: Path, items, users) -> Path:
    """A bundle holding only a two-tower of configs/train.yaml's shape (32-d, 20-item history, one 128-unit
    layer, the synthetic items' and users' attributes), random weights: what the live vector costs."""
    from recsys.retrieval import _towers as tw
    from recsys.retrieval.two_tower import TwoTowerConfig, TwoTowerModel

    config = TwoTowerConfig(embedding_dim=32)
    specs = {"user": tw.feature_specs(users, "user_id", None, config.max_vocab),
             "item": tw.feature_specs(items, "item_id", None, config.max_vocab)}
    weights = tw.init_weights(config, specs, len(users), len(items))
    item_ids = items.item_id.to_numpy(dtype=str)
    user_table = tw.encode(pd.concat([users, users.iloc[:0].reindex([0])], ignore_index=True), specs["user"])
    embeddings = tw.tower(tw.NP, weights, "item", specs["item"], config, np.arange(1, len(items) + 1),
                          tw.encode(items, specs["item"]))
    model = TwoTowerModel(config, specs, weights, item_ids, users.user_id.to_numpy(dtype=str),
                          users.user_id.to_numpy(dtype=str), user_table,
                          np.zeros((len(users) + 1, config.history_length), np.int32), item_ids, embeddings)
    bundle = root / "bundle"
    model.save(bundle / "recommender" / "two_tower")
    (bundle / "bundle.json").write_text(json.dumps({"version": "bench-random"}))
    return bundle


def consumer_config(args, broker, repo, fs_yaml, topic, root, bundle, **extra):
    return load_config(environ={}, kafka={"bootstrap_servers": broker.bootstrap}, topic=topic,
                       consumer={"group_id": f"bench-{topic}", **extra.get("consumer", {})},
                       state={"repo_path": str(repo), "fs_yaml": fs_yaml, "max_events": args.max_events,
                              "derived_seconds": args.derived_seconds},
                       archive={"root": str(root / f"archive-{topic}")}, metrics={"port": 0},
                       model={"model": str(bundle), "reload_seconds": 0})


def run_consumer(config, until, timeout: float = 900.0) -> tuple[Probe, dict]:
    """The consumer in a thread until `until(probe)`; its totals."""
    probe = Probe()
    consumer = StreamConsumer(config, probe)
    out = {}
    thread = threading.Thread(target=lambda: out.update(consumer.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not until(probe) and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    consumer.stop.set()
    thread.join(timeout=120)
    return probe, out


def throughput(args, broker, stores, root, bundle, frame) -> None:
    for store, (repo, fs_yaml) in stores.items():
        events = list(events_of(frame))
        topic = f"throughput-{store}"
        create_topics(broker.bootstrap, {topic: args.partitions, f"{topic}.dlq": 1})
        producer = EventProducer(topic, {"bootstrap_servers": [broker.bootstrap]}, batch_size=262144, linger_ms=20)
        started = time.perf_counter()
        producer.send_many(events, timeout=600)
        producer.close()
        produced = time.perf_counter() - started
        n_events = len(events)
        del events  # not kept alive (and scanned by the collector) while the consumer runs in this process
        print(f"  [{store}] backlog of {n_events:,} events produced in {produced:.1f} s "
              f"({n_events / produced:,.0f}/s, kafka-python, one producer) ({load()})", flush=True)
        config = consumer_config(args, broker, repo, fs_yaml, topic, root, bundle)
        probe, totals = run_consumer(config, lambda p: p.records >= n_events)
        seconds = probe.last - probe.first
        rolls = probe.roll_seconds()
        print(f"  [{store}] consumer: {probe.records:,} events in {seconds:.2f} s = {probe.records / seconds:,.0f} "
              f"events/s; {totals.get('batches', 0)} batches, {probe.rows:,} row writes "
              f"({probe.rows / max(1, totals.get('batches', 1)):,.0f} users per batch), "
              f"{totals.get('duplicates', 0)} dedup hits, {totals.get('commits', 0)} commits ({load()})", flush=True)
        background = {k: rolls.pop(k) for k in ("archive", "dlq") if k in rolls}
        spent = dict(probe.stages)
        for stage, value in rolls.items():  # the roll's derived flush adds to the batches' writes
            spent[stage] = spent.get(stage, 0.0) + value
        poll = seconds - sum(spent.values())
        parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]))
        print(f"  [{store}] where the consumer thread's time goes (s): {parts}, poll+decode+other "
              f"{max(0.0, poll):.2f}; in the background roll thread: "
              + ", ".join(f"{k} {v:.2f}" for k, v in background.items()), flush=True)


def lag(args, broker, stores, root, bundle, days: int) -> None:
    repo, fs_yaml = stores["redis"] if "redis" in stores else next(iter(stores.values()))
    topic = "steady"
    create_topics(broker.bootstrap, {topic: args.partitions, f"{topic}.dlq": 1})
    config = consumer_config(args, broker, repo, fs_yaml, topic, root, bundle)
    stream_yaml = root / "steady.yaml"
    stream_yaml.write_text(json.dumps({"kafka": {"bootstrap_servers": broker.bootstrap}, "topic": topic}))
    total = int(args.rate * args.seconds)
    replayer = None
    samples: list[tuple[int, float]] = []

    def until(probe) -> bool:
        nonlocal replayer
        if replayer is None and probe.first is None and time.monotonic() - began > 3:
            replayer = subprocess.Popen(
                [sys.executable, "-m", "recsys.streaming.replay", "--rate", str(args.rate), "--limit", str(total),
                 "--days", str(days), "--timestamps", "now", "--config", str(stream_yaml)], cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if replayer is not None and time.monotonic() - until.last >= 0.5:
            until.last = time.monotonic()
            produced = sum(end_offsets(broker.bootstrap, topic).values())
            samples.append((produced - probe.records, probe.ages[-1] if probe.ages else 0.0))
        return probe.records >= total

    until.last, began = 0.0, time.monotonic()
    probe, _ = run_consumer(config, until, timeout=args.seconds * 4 + 120)
    out = replayer.communicate(timeout=60)[0].decode().strip().splitlines()[-1] if replayer else "not started"
    behind = np.array([s[0] for s in samples] or [0])
    ages = np.array(probe.ages or [0.0])
    print(f"  replayer: {out}", flush=True)
    print(f"  lag at {args.rate:,.0f} events/s for {args.seconds:.0f} s ({len(samples)} samples): messages behind "
          f"p50 {np.percentile(behind, 50):,.0f}, p99 {np.percentile(behind, 99):,.0f}, max {behind.max():,}; "
          f"event age when applied p50 {np.percentile(ages, 50) * 1000:.0f} ms, p99 "
          f"{np.percentile(ages, 99) * 1000:.0f} ms ({probe.records:,} events; {load()})", flush=True)


def freshness(args, broker, stores, root, bundle) -> None:
    try:
        from recsys.serving.state import OnlineState

        supported = hasattr(OnlineState, "use_store")
    except ImportError:
        supported = False
    if not supported:
        print("  SKIPPED: needs the service that reads each user's row from the online store per request "
              "(recsys/serving/state.py OnlineState.use_store, the serving side of issue 9), not in this "
              "checkout. Once merged: python benchmarks/streaming.py --sections freshness", flush=True)
        return
    from streaming_freshness import run

    repo, fs_yaml = stores["redis"] if "redis" in stores else next(iter(stores.values()))
    run(args, broker, repo, root, lambda topic: consumer_config(args, broker, repo, fs_yaml, topic, root, bundle),
        run_consumer, load)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", nargs="+", default=["throughput", "lag", "freshness"],
                        choices=("throughput", "lag", "freshness"))
    parser.add_argument("--stores", nargs="+", default=["sqlite", "redis"], choices=("sqlite", "redis"))
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-events", type=int, default=200, help="events kept per user row")
    parser.add_argument("--derived-seconds", type=float, default=5.0, help="counters / vectors written this often "
                        "(configs/stream.yaml state.derived_seconds; 0: every batch)")
    parser.add_argument("--rate", type=float, default=3000.0, help="lag section: produced events/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="lag section: how long")
    parser.add_argument("--freshness-rate", type=float, default=1000.0, help="freshness: background events/s")
    parser.add_argument("--probes", type=int, default=100, help="freshness: events timed to /recommend")
    args = parser.parse_args(argv)

    from recsys.data.synthetic import generate_travel_data

    print(f"streaming benchmark: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{load()}", flush=True)
    data = generate_travel_data(n_users=args.users, n_items=400, n_events=args.events, days=30, seed=11)
    frame = data.interactions
    print(f"data: synthetic travel, {len(frame):,} events, {frame.user_id.nunique():,} users, 400 items, 30 days; "
          f"{args.partitions} partitions; row = newest {args.max_events} events; counters and vectors every "
          f"{args.derived_seconds:g} s; crc32c {'on' if _native_crc() else 'OFF (pip install crc32c)'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp, RedisServer() as redis:
        root = Path(tmp)
        os.environ["RECSYS_REDIS"] = redis.connection_string
        repo = copy_repo(root)
        write_features(repo, frame.iloc[:20_000], data.items)
        stores = {}
        for store in args.stores:
            fs_yaml = "feature_store.yaml" if store == "sqlite" else "feature_store_redis.yaml"
            apply_repo(repo, fs_yaml)
            stores[store] = (repo, fs_yaml)
        bundle = random_two_tower_bundle(root, data.items, data.users)
        with DevBroker(root / "kafka") as broker:
            print(f"broker: noida-db (Kafka protocol) {broker.bootstrap}; Redis {redis.connection_string}", flush=True)
            if "throughput" in args.sections:
                print("\n1. throughput (a backlog, every effect on)", flush=True)
                throughput(args, broker, stores, root, bundle, frame)
            if "lag" in args.sections:
                print("\n2. lag under a steady produced rate", flush=True)
                lag(args, broker, stores, root, bundle, days=int(args.rate * args.seconds / 300) + 2)
            if "freshness" in args.sections:
                print("\n3. freshness (produced -> visible in /recommend over HTTP)", flush=True)
                freshness(args, broker, stores, root, bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
