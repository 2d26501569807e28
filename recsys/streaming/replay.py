"""The replayer: a dataset's interactions streamed into the topic at a chosen rate, as contract events.

    python -m recsys.streaming.replay --source synthetic --rate 1000          # the days after the training window
    python -m recsys.streaming.replay --source movielens --rate 500 --fraction 0.1   # MovieLens' newest 10%
    python -m recsys.streaming.replay --source synthetic --rate 0 --limit 100000     # as fast as it can

Where this sits: the dev loop's traffic (and the streaming benchmark's): events go through the same
producer as the service's /feedback (recsys.streaming.producer: keyed by user, acks=all) to the topic of
configs/stream.yaml, for the consumer to apply. Each run gives its events fresh ids (a second run is new
traffic, not a redelivery); `--stable-ids` derives them from the source rows instead (a second run then
changes nothing: the consumer counts dedup hits). Timestamps are the dataset's (`--timestamps original`) or
the sending time (`now`, in the dataset's order: what the freshness measurement needs).

Synthetic: the training config's generator (configs/train.yaml `source_params`) run for `--days` more days,
and only those days kept: the same users, items and preference model, after the window the model was trained
on. (Hand-written pacing: a token bucket of one sleep per chunk; a library would add a dependency for ten
lines.)
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import yaml

from recsys.data.schema import EVENT_TYPE, ITEM_ID, SESSION_ID, TIMESTAMP, USER_ID, VALUE
from recsys.streaming.config import PROJECT_ROOT, load_config
from recsys.streaming.producer import EventProducer


def synthetic_after_window(train_config: str | Path = PROJECT_ROOT / "configs" / "train.yaml",
                           days: int = 30) -> pd.DataFrame:
    """The synthetic interactions of the `days` days after the training config's window, in time order."""
    from recsys.data.synthetic import generate_travel_data

    params = dict((yaml.safe_load(Path(train_config).read_text())["parameters"]).get("source_params") or {})
    window = int(params.get("days", 180))
    params["n_events"] = int(params.get("n_events", 100_000) * (window + days) / window)
    params["days"] = window + days
    frame = generate_travel_data(**params).interactions
    cut = pd.Timestamp(params.get("start", "2025-01-01"), tz="UTC") + pd.Timedelta(days=window)
    return frame[frame[TIMESTAMP] >= cut].reset_index(drop=True)


def movielens_tail(fraction: float = 0.1, cache_dir: str | Path = "data/raw") -> pd.DataFrame:
    """MovieLens-100K's newest `fraction` of ratings, in time order."""
    from recsys.data.movielens import load_movielens_100k

    frame = load_movielens_100k(cache_dir).interactions.sort_values(TIMESTAMP, kind="stable")
    return frame.iloc[int(len(frame) * (1 - fraction)):].reset_index(drop=True)


def events_of(frame: pd.DataFrame, timestamps: str = "original", stable_ids: str | None = None) -> Iterator[dict]:
    """Contract events (recsys.streaming.events), one per row; `stable_ids` is the id prefix when set."""
    columns = [frame[c].tolist() if c in frame else [None] * len(frame)
               for c in (USER_ID, ITEM_ID, EVENT_TYPE, VALUE, SESSION_ID)]
    times = frame[TIMESTAMP].map(lambda t: t.isoformat()).tolist() if timestamps == "original" else None
    run = uuid.uuid4().hex[:12]
    for i, (user, item, kind, value, session) in enumerate(zip(*columns)):
        event = {"v": 1, "event_id": f"{stable_ids}-{i}" if stable_ids else f"{run}-{i}", "user_id": str(user),
                 "item_id": str(item), "event_type": kind,
                 "timestamp": times[i] if times else pd.Timestamp.now(tz="UTC").isoformat()}
        if value is not None and value == value:
            event["value"] = float(value)
        if session is not None:
            event["session_id"] = str(session)
        yield event


def replay(events: Iterator[dict], producer: EventProducer, rate: float, limit: int | None = None,
           chunk_seconds: float = 0.05, report=print) -> dict:
    """Send at `rate` events/s (0: as fast as possible), in chunks of `rate * chunk_seconds` events each
    acknowledged before the next; returns {"events", "seconds", "rate"}."""
    chunk = max(1, int(rate * chunk_seconds)) if rate else 2000
    started, sent, last_report, batch = time.perf_counter(), 0, time.perf_counter(), []
    for event in events:
        if limit is not None and sent + len(batch) >= limit:
            break
        batch.append(event)
        if len(batch) < chunk:
            continue
        sent += producer.send_many(batch)
        batch = []
        if rate:
            ahead = sent / rate - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)
        if report and time.perf_counter() - last_report >= 5:
            report(f"sent {sent} events, {sent / (time.perf_counter() - started):.0f}/s")
            last_report = time.perf_counter()
    if batch:
        sent += producer.send_many(batch)
    seconds = time.perf_counter() - started
    return {"events": sent, "seconds": round(seconds, 3), "rate": round(sent / seconds, 1) if seconds else 0.0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Stream a dataset's interactions into the events topic.")
    parser.add_argument("--source", choices=("synthetic", "movielens"), default="synthetic")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second (0: as fast as possible)")
    parser.add_argument("--limit", type=int, help="stop after this many events")
    parser.add_argument("--days", type=int, default=30, help="synthetic: days after the training window")
    parser.add_argument("--train-config", default=str(PROJECT_ROOT / "configs" / "train.yaml"))
    parser.add_argument("--fraction", type=float, default=0.1, help="movielens: newest share of the ratings")
    parser.add_argument("--timestamps", choices=("original", "now"), default="original")
    parser.add_argument("--stable-ids", action="store_true", help="ids from the source rows (replays dedup)")
    parser.add_argument("--config", help="stream config (topic, Kafka); default configs/stream.yaml")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    frame = synthetic_after_window(args.train_config, args.days) if args.source == "synthetic" \
        else movielens_tail(args.fraction)
    print(f"replaying {len(frame)} {args.source} events ({frame[TIMESTAMP].min()} .. {frame[TIMESTAMP].max()}) "
          f"to {config.topic} on {config.kafka.bootstrap_servers} at "
          f"{f'{args.rate:.0f}/s' if args.rate else 'full speed'}", flush=True)
    producer = EventProducer.from_config(config)
    try:
        result = replay(events_of(frame, args.timestamps, args.source if args.stable_ids else None), producer,
                        args.rate, args.limit)
    finally:
        producer.close()
    print(f"sent {result['events']} events in {result['seconds']} s ({result['rate']}/s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
