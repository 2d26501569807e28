"""The offline store on disk: one Parquet dataset per batch view, partitioned by snapshot date.

Layout under the features directory (recsys.features.definitions.features_dir), which the Feast repo's file
sources read:

    spec.json                                  the resolved FeatureSpec the tables follow
    user_activity_daily/date=2025-01-02/*.parquet   (also user_affinity_daily/, item_popularity_daily/)
    user_counters_realtime.parquet             push views' batch sources: empty until something logs there

A run replaces a view's whole dataset (a full recompute): it writes beside the old one and swaps the
directories, so a reader sees the old or the new tables, never a half-written mix of partitions. One job
writes a directory at a time: a run starts by removing what a killed run left there (`clear_leftovers`).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from recsys.features.definitions import BATCH_VIEWS, ENTITY_OF, EVENT_TIMESTAMP, PARTITION, PUSH_VIEWS, FeatureSpec


LEFTOVERS = (".*.tmp", ".*.old", ".duckdb-*")  # staged views, swapped-out views, DuckDB's scratch space


def clear_leftovers(out_dir: str | Path) -> list[Path]:
    """Remove the hidden directories an interrupted run leaves in `out_dir` (a killed job never reaches its
    clean-up: at 10M events a staged view is GBs); returns what was removed."""
    removed = [path for pattern in LEFTOVERS for path in Path(out_dir).glob(pattern) if path.is_dir()]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def staging_dir(out_dir: Path, view: str) -> Path:
    """Where a run writes a view before `publish` swaps it in."""
    return Path(out_dir) / f".{view}.{uuid.uuid4().hex[:8]}.tmp"


def publish(out_dir: Path, view: str, staged: Path) -> Path:
    """Swap the staged dataset in as the view's dataset; the old one is removed after the swap."""
    target = Path(out_dir) / view
    old = Path(out_dir) / f".{view}.{uuid.uuid4().hex[:8]}.old"
    if target.exists():
        target.rename(old)
    staged.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def finish(out_dir: str | Path, spec: FeatureSpec) -> None:
    """What every engine does after writing the batch views: the spec, and empty push-view tables."""
    spec.write(out_dir)
    for view in PUSH_VIEWS:
        path = Path(out_dir) / f"{view}.parquet"
        if not path.exists():
            pq.write_table(spec.arrow_schema(view).empty_table(), path)


def push_source_path(out_dir: str | Path, view: str) -> Path:
    return Path(out_dir) / f"{view}.parquet"


def read_view(out_dir: str | Path, view: str) -> pd.DataFrame:
    """A view's whole table as pandas, sorted by entity and snapshot (tests and inspection)."""
    if view not in BATCH_VIEWS:
        return pq.read_table(push_source_path(out_dir, view)).to_pandas()
    dataset = pq.ParquetDataset(Path(out_dir) / view, partitioning="hive")
    frame = dataset.read().to_pandas()
    frame[PARTITION] = frame[PARTITION].astype(str)
    return frame.sort_values([ENTITY_OF[view], EVENT_TIMESTAMP], ignore_index=True)
