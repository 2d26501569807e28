"""The loop closing under live traffic: `bentoml serve` follows the production alias while the retrain
pipeline detects the planted shift, trains a challenger and promotes it; no request may fail.

    python run.py --pipeline train          # once: a production model on the embedded default
    python benchmarks/loop_demo.py          # serve it, then run the loop until it promotes a challenger

What it does: starts `bentoml serve` (bentos/service.py) on a free loopback port with the project's MLflow
registry (`models:/travel-recommender@production`, reload poll every 2 s); a client thread keeps calling
/recommend for known users (and /feedback now and then); meanwhile `python run.py --pipeline retrain`
runs (configs/retrain.yaml: the season turns one week after the training data) until a run promotes a
challenger, at most `--max-runs` times. Prints each run's verdict and decision, the requests served by
each model version, the failures (target 0) and how long after the promotion the service answered from
the new version. Uses the project's own data/ (as the README's commands do): each run checks the next week.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bentos.devserver import BentoServer  # noqa: E402


def client(url: str, users: list[str], stop: threading.Event, seen: Counter, failures: list, first_seen: dict):
    session, i = requests.Session(), 0
    while not stop.is_set():
        user = users[i % len(users)]
        i += 1
        try:
            if i % 25 == 0:
                response = session.post(f"{url}/feedback", json={"user_id": user, "item_id": "h0001",
                                                                 "event_type": "click"}, timeout=10)
                response.raise_for_status()
                continue
            response = session.post(f"{url}/recommend", json={"user_id": user, "k": 10}, timeout=10)
            response.raise_for_status()
            version = response.json()["model_version"]
            seen[version] += 1
            first_seen.setdefault(version, time.time())
        except Exception as error:  # noqa: BLE001 - every failure is counted and shown
            failures.append(f"{type(error).__name__}: {error}"[:200])
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-runs", type=int, default=4)
    parser.add_argument("--config", default="configs/retrain.yaml")
    args = parser.parse_args()
    uri = f"sqlite:///{ROOT / 'data' / 'mlflow' / 'mlflow.db'}"
    env = {"RECSYS_MODEL": "models:/travel-recommender@production", "MLFLOW_TRACKING_URI": uri,
           "RECSYS_RELOAD_INTERVAL": "2", "RECSYS_CACHE_DIR": str(ROOT / "data" / "serving" / "bundles"),
           "RECSYS_LOG_DIR": str(ROOT / "data" / "serving" / "logs")}
    server = BentoServer(env, ROOT / "data" / "serving" / "loop_demo.log").start(timeout=300)
    print(f"serving {env['RECSYS_MODEL']} at {server.url} ({os.cpu_count()} cores)", flush=True)
    users = [f"u{i:05d}" for i in range(0, 2000, 7)]
    stop, seen, failures, first_seen = threading.Event(), Counter(), [], {}
    thread = threading.Thread(target=client, args=(server.url, users, stop, seen, failures, first_seen), daemon=True)
    thread.start()
    promoted_at, started = None, time.time()
    try:
        for n in range(args.max_runs):
            print(f"\n--- python run.py --pipeline retrain --config {args.config} (run {n + 1})", flush=True)
            out = subprocess.run([sys.executable, "run.py", "--pipeline", "retrain", "--config", args.config],
                                 cwd=ROOT, capture_output=True, text=True)
            tail = out.stdout[out.stdout.find("\nrun retrain"):] if "\nrun retrain" in out.stdout else out.stdout[-2000:]
            print(tail.strip() or out.stderr[-2000:])
            if "'promoted': True" in out.stdout:
                promoted_at = time.time()
                break
        if promoted_at is not None:
            deadline = time.time() + 120
            while time.time() < deadline and len(seen) < 2:
                time.sleep(0.5)
            time.sleep(5)  # keep serving after the swap
    finally:
        stop.set()
        thread.join(timeout=15)
        server.stop()
    print(f"\nrequests by model version: {dict(seen)}; failed: {len(failures)}")
    for failure in failures[:5]:
        print("  ", failure)
    if promoted_at is not None and len(first_seen) > 1:
        newest = max(first_seen, key=first_seen.get)
        print(f"the service answered from {newest} {first_seen[newest] - promoted_at:+.1f} s after the retrain run "
              f"ended (the promotion happens before the run ends; reload poll 2 s)")
    print(f"wall time {time.time() - started:.0f} s")
    sys.exit(1 if failures or promoted_at is None else 0)


if __name__ == "__main__":
    main()
