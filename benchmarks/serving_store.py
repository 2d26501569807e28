"""The serving benchmark with the online store on every request: a ranker with Feast store features, and the
users' real-time rows (`user_events_realtime`), against another checkout of the code, interleaved.

    python benchmarks/serving.py --store --baseline-code DIR [--rounds 3] [--profile]

(`git archive main | tar -x -C DIR` gives main's code: it reads the store features with Feast's
`get_online_features` per request and has no real-time row.) Built once and cached under data/bench/:
the 10k-item benchmark bundle of benchmarks/serving_stages.py with its ranker retrained on Feast store
features (point-in-time, the feature job's tables in a copy of feature_repo/ with a sqlite online store,
materialized), and for each request user a real-time row holding their newest events (up to 200, all
already in the bundle: the steady state, where a row read changes nothing). Each server runs one worker with
KAFKA_BOOTSTRAP_SERVERS pointing at the embedded dev broker (noida-db), so this code reads the requesting
user's row -- real-time events and daily store features in one key lookup -- on every /recommend.

After both servers finished their warm-up, wrk runs alternate between them (`rounds` times at each
connection count), so both see the same box; `--profile` then samples each worker with py-spy during one
more run at 8 connections and prints the share of samples in the state read and in the Recommender.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RANKER_USERS = 4000
ROW_EVENTS = 200  # the real-time row's window (recsys.streaming.state.DEFAULT_MAX_EVENTS)
# Where a sampled stack counts as "reading the user's state": this code's state sync stage, and the code
# before it (Feast get_online_features + a DataFrame per request, pinned for the request).
STATE_FRAMES = (("sync", "recsys/serving/state.py"), ("pinned", "recsys/features/online.py"),
                ("user_features", "recsys/features/online.py"), ("stamps_of_store", "recsys/serving/ranked.py"),
                ("pinned_store_rows", "recsys/serving/ranked.py"))
RECOMMENDER_FRAMES = (("recommend", "recsys/serving/recommender.py"),)


def store_bundle(n_items: int = 10_000, root: Path = ROOT / "data" / "bench", rebuild: bool = False):
    """(bundle dir, Feast repo dir) of the store-feature benchmark bundle, built if missing."""
    from recsys.registry.bundle import META_FILE

    path = Path(root) / f"serving-{n_items}-store"
    bundle, repo = path / "bundle", path / "project" / "feature_repo"
    if (bundle / META_FILE).exists() and not rebuild:
        return bundle, repo
    import shutil
    from datetime import timedelta

    import numpy as np
    import pandas as pd
    from serving_stages import DATA, bench_bundle

    from recsys import training
    from recsys.data.splits import temporal_user_split
    from recsys.data.synthetic import generate_travel_data
    from recsys.features.definitions import features_dir
    from recsys.features.provider import PointInTimeFeatures
    from recsys.features.store import apply_repo, latest_snapshot, materialize, open_store
    from recsys.registry.bundle import load_bundle, save_bundle
    from tests.feature_repo.repo import copy_repo, write_features

    base, _ = load_bundle(bench_bundle(n_items))  # its two-tower, Faiss index and candidate sources
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.time()
    ds = generate_travel_data(n_items=n_items, **DATA)
    split = temporal_user_split(ds.interactions, (0.8, 0.1, 0.1))
    repo = copy_repo(path / "project")
    write_features(repo, ds.interactions, ds.items)
    apply_repo(repo)
    last = latest_snapshot(features_dir(repo))
    materialize(open_store(repo), last, lookback=timedelta(days=3650))  # every user's latest row online
    print(f"[bench] feature job, apply, materialize ({time.time() - t0:.0f}s)", flush=True)
    rng = np.random.default_rng(0)
    valid_users = split.valid.user_id.unique()
    sample = rng.choice(valid_users, min(RANKER_USERS, len(valid_users)), replace=False)
    ranking, _ = training.fit_ranker(base.generator, split.train, split.valid[split.valid.user_id.isin(sample)],
                                     ds.items, ds.users, {"num_rounds": 100}, store=PointInTimeFeatures(repo))
    print(f"[bench] ranker with store features trained ({time.time() - t0:.0f}s)", flush=True)
    rec = training.build_recommender(base.generator, ranking, ds.items, ds.users,
                                     pd.concat([split.train, split.valid], ignore_index=True), version="bench-store")
    save_bundle(rec, bundle, {}, {"data": {"n_items": n_items, **DATA}, "ranker_users": RANKER_USERS,
                                  "store_features": True})
    return bundle, repo


def write_rows(repo: Path, bundle: Path, users: list[str]) -> int:
    """Each user's real-time row: their newest events of the bundle's history (the consumer's row of a
    user whose events the bundle was trained on)."""
    import pandas as pd

    from recsys.streaming.state import OnlineEventStore, UserEvents

    history = pd.read_parquet(bundle / "recommender" / "history.parquet")
    items = pd.read_parquet(bundle / "recommender" / "items.parquet").item_id.to_numpy()
    history = history[history.user_id.isin(set(users))]
    rows = {}
    for user, block in history.groupby("user_id", sort=False):
        block = block.tail(ROW_EVENTS)
        n = len(block)
        rows[user] = UserEvents(tuple(f"{user}-{k}" for k in range(n)), tuple(items[block.item_pos.to_numpy()]),
                                ("view",) * n, tuple(float(t) for t in block.t))
    return OnlineEventStore(repo).write(rows)


def worker_pid(server) -> int:
    """The BentoML worker process of a one-worker server (the arbiter's child serving HTTP)."""
    import psutil

    for child in psutil.Process(server.process.pid).children(recursive=True):
        if "_bentoml_impl.worker" in " ".join(child.cmdline()):
            return child.pid
    raise RuntimeError("no BentoML worker process found")


def profile_shares(pid: int, seconds: float, out: Path) -> dict:
    """py-spy samples of `pid` for `seconds` (non-blocking, active threads): share of samples whose stack
    holds a state-read frame, and a Recommender.recommend frame; `top`: the functions the state-read samples
    were in (innermost frame). The raw profile stays in `out` (flamegraph.pl input)."""
    subprocess.run(["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
                    "--nonblocking", "--format", "raw", "--output", str(out)], check=True, capture_output=True)
    counts, inside = Counter(), Counter()
    for line in out.read_text().splitlines():
        m = re.match(r"^(.*) (\d+)$", line)
        if not m:  # not a stack (a frame name may hold spaces, a count never does)
            continue
        stack, n = m.groups()
        frames = stack.split(";")
        counts["total"] += int(n)
        for name, frames_of in (("state", STATE_FRAMES), ("recommender", RECOMMENDER_FRAMES)):
            if any(_is(frame, f, path) for frame in frames for f, path in frames_of):
                counts[name] += int(n)
                if name == "state":
                    inside[frames[-1]] += int(n)
    total = max(counts["total"], 1)
    return {k: counts[k] / total for k in ("state", "recommender")} | {
        "samples": counts["total"], "top": [(frame, n / total) for frame, n in inside.most_common(6)]}


def _is(frame: str, function: str, path: str) -> bool:
    m = re.match(r"(\S+) \((.*):\d+\)$", frame)
    return bool(m) and m.group(1).split(".")[-1] == function and m.group(2).endswith(path)


class Broker:
    """The noida-db Kafka-protocol broker on a free loopback port (DEVELOPERS.md's dev broker)."""

    def __enter__(self):
        import noida_db
        from kafka import KafkaProducer

        from bentos.devserver import free_port

        self.dir = tempfile.TemporaryDirectory(prefix="bench-broker-")
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self.process = subprocess.Popen([str(Path(noida_db.__file__).parent / "noida-db"), "start", "--data-dir",
                                         self.dir.name, "--host", "127.0.0.1", "--only", "kafka", "--kafka-port",
                                         str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                KafkaProducer(bootstrap_servers=[self.address], request_timeout_ms=2000).close()
                return self
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError("the dev broker did not start")
                time.sleep(0.3)

    def __exit__(self, *exc):
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=20)
        self.dir.cleanup()


def compare(baseline: Path | None, users: list[str], k: int, duration: float, rounds: int, connections,
            profile: bool, tmp: Path, n_items: int = 10_000) -> None:
    """Both servers up and warm, then interleaved wrk runs (see the module docstring)."""
    from serving import lua_recommend, server_env, wait_warm, wrk

    from bentos.devserver import BentoServer

    bundle, repo = store_bundle(n_items)
    print(f"store setup: bundle {bundle}, Feast repo {repo} (sqlite online store); real-time rows written for "
          f"{write_rows(repo, bundle, users)} request users", flush=True)
    script = tmp / "recommend.lua"
    script.write_text(lua_recommend(users, k))
    codes = ([("baseline", baseline)] if baseline else []) + [("this code", ROOT)]
    with Broker() as broker:
        servers = {}
        try:
            for name, code in codes:
                env = server_env(tmp / re.sub(r"\W+", "-", name), str(bundle), KAFKA_BOOTSTRAP_SERVERS=broker.address,
                                 RECSYS_FEATURE_REPO=str(repo), RECSYS_FEATURE_CLOCK="snapshot")
                servers[name] = BentoServer(env, tmp / f"{re.sub(r'[^a-z]+', '-', name)}.log", root=code).start(600)
                print(f"{name} ({code}): {wait_warm(servers[name].url)}", flush=True)
            for server in servers.values():
                wrk(server.url + "/recommend", script, 8, 3)  # warm-up
            rows = []
            for r in range(rounds):
                for c in connections:
                    for name, server in servers.items():
                        rows.append({"round": r + 1, "code": name, "connections": c, "load": os.getloadavg()[0],
                                     **wrk(server.url + "/recommend", script, c, duration)})
            print(f"\n== /recommend with the online store read per request, interleaved: wrk -t1 -cN "
                  f"-d{duration:.0f}s, one worker each")
            print(f"{'round':>5} {'code':<10}{'conn':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}{'load':>6}")
            for row in rows:
                print(f"{row['round']:>5} {row['code']:<10}{row['connections']:>5}{row['rps']:>9.0f}{row['p50']:>9.2f}"
                      f"{row['p99']:>9.2f}{row['errors']:>7}{row['load']:>6.2f}")
            if baseline:
                for c in connections:
                    mean = {name: sum(r["rps"] for r in rows if r["code"] == name and r["connections"] == c) / rounds
                            for name in servers}
                    print(f"connections {c}: mean req/s this code {mean['this code']:.0f} vs baseline "
                          f"{mean['baseline']:.0f}: {mean['this code'] / mean['baseline']:.2f}x")
            if profile:
                print("\n== py-spy, 8 connections (share of the worker's samples)")
                for name, server in servers.items():
                    pid = worker_pid(server)
                    load = subprocess.Popen(["wrk", "-t1", "-c8", f"-d{duration + 4:.0f}s", "-s", str(script),
                                             server.url + "/recommend"], stdout=subprocess.DEVNULL)
                    time.sleep(2)
                    slug = f"{re.sub(r'[^a-z]+', '-', name)}-{time.time():.0f}"
                    out = ROOT / "data" / "bench" / "profiles" / f"{slug}.txt"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shares = profile_shares(pid, duration, out)
                    load.wait()
                    print(f"{name:<10} state read {100 * shares['state']:.1f}%, Recommender.recommend "
                          f"{100 * shares['recommender']:.1f}% of {shares['samples']} samples ({out})")
                    for frame, share in shares["top"]:
                        print(f"{'':<12}{100 * share:5.1f}%  {frame}")
        finally:
            for server in servers.values():
                server.stop()
