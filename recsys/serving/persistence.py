"""Recommender persistence and catalogue/state changes that touch every stage.

`save` / `load`: one directory (inside the model bundle, recsys.registry.bundle) holding the models, the
history and the serving state added by the serving issue: cold-start trend tables (cold_start/), blocked and
unavailable items (serving_state.json) and impressions (impressions.parquet). Bundles written before these
existed still load (global trending fitted from the history, empty state).

`add_items`: new catalogue items after training. `adopt_online_state`: hot reload keeps what the running
service learned since its bundle was built.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.schema import ITEM_ID
from recsys.features.history import Catalog, History
from recsys.serving.config import DEFAULTS

STATE_FILE = "serving_state.json"


def save(rec, path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"item_id": rec.catalog.item_ids}).join(rec.catalog.attributes).to_parquet(path / "items.parquet")
    two_tower = rec._two_tower()
    if two_tower is not None:
        two_tower.model.save(path / "two_tower")
        if two_tower.index is not None:
            two_tower.index.save(path / "ann_index")
    rec.generator.save(path / "candidates")
    if rec.ranking is not None:
        rec.ranking.save(path / "ranking")
    rec.history.to_frame().to_parquet(path / "history.parquet")
    rec.cold.save(path / "cold_start")
    state = {"blocklist": sorted(rec.blocklist.ids), "unavailable": sorted(rec.unavailable.ids)}
    (path / STATE_FILE).write_text(json.dumps(state, indent=1))
    rec.impressions.to_frame().to_parquet(path / "impressions.parquet")
    meta = {"version": rec.version, "config": rec.config, "event_weights": rec.history.event_weights}
    (path / "recommender.json").write_text(json.dumps(meta, indent=2))
    return path


def load(cls, path):
    from recsys.ranking.model import RankingModel
    from recsys.retrieval.candidates import CandidateGenerator
    from recsys.retrieval.index import AnnIndex
    from recsys.retrieval.two_tower import TwoTowerModel
    from recsys.serving.cold_start import ColdStart

    path = Path(path)
    meta = json.loads((path / "recommender.json").read_text())
    items = pd.read_parquet(path / "items.parquet")
    catalog = Catalog(items.item_id.to_numpy(dtype=object), items.drop(columns="item_id"))
    context = {}
    if (path / "two_tower").exists():
        context["model"] = TwoTowerModel.load(path / "two_tower")
        threads = meta["config"].get("search_threads", DEFAULTS["search_threads"])
        context["index"] = AnnIndex.load(path / "ann_index", threads) if (path / "ann_index").exists() else None
    generator = CandidateGenerator.load(path / "candidates", catalog, **context)
    ranking = RankingModel.load(path / "ranking", catalog) if (path / "ranking").exists() else None
    history = History.from_frame(catalog, pd.read_parquet(path / "history.parquet"), meta["event_weights"])
    cold = ColdStart.load(path / "cold_start") if (path / "cold_start").exists() else None
    rec = cls(catalog, generator, ranking, history, meta["config"], meta["version"], cold_start=cold)
    if (path / STATE_FILE).exists():
        state = json.loads((path / STATE_FILE).read_text())
        rec.blocklist.add(state.get("blocklist", []))  # on top of the configured file, if any
        rec.unavailable.set(state.get("unavailable", []))
    if (path / "impressions.parquet").exists():
        rec.impressions.load_frame(pd.read_parquet(path / "impressions.parquet"))
    return rec


def add_items(rec, items: pd.DataFrame) -> int:
    if ITEM_ID not in items.columns:
        raise ValueError("items need an item_id column")
    items = items.astype({ITEM_ID: str}).drop_duplicates(ITEM_ID)
    new = items[~items[ITEM_ID].isin(rec.catalog.index)].reset_index(drop=True)
    if not len(new):
        return 0
    catalog = rec.catalog
    with rec.state.lock:
        start = len(catalog)
        attrs = new.drop(columns=ITEM_ID).reindex(columns=catalog.attributes.columns)
        attrs.index = range(start, start + len(new))
        catalog.attributes = pd.concat([catalog.attributes, attrs.astype(catalog.attributes.dtypes, errors="ignore")])
        catalog.item_ids = np.concatenate([catalog.item_ids, new[ITEM_ID].to_numpy(dtype=object)])
        catalog.index.update({item: start + k for k, item in enumerate(new[ITEM_ID])})
        two_tower = rec._two_tower()
        if two_tower is not None:
            two_tower.add_items(new)
        if rec.ranking is not None:
            rec.ranking.features.extend_catalog(catalog)
        rec.cold.grow(len(catalog))
        rec.blocklist.grow(len(catalog), catalog.index)
        rec.unavailable.grow(len(catalog), catalog.index)
        flagged = rec._unavailable_attribute()
        if flagged:
            rec.unavailable.add(flagged)
        rec._configure()
    rec.models_changed()  # new items can now be retrieved: every ranked list is stale
    return len(new)


def unavailable_attribute(rec) -> list[str]:
    """Items the catalogue flags unavailable (`filters.availability_column` false / 0 / no)."""
    col = rec.config["filters"]["availability_column"]
    attrs = rec.catalog.attributes
    if not col or col not in attrs.columns:
        return []
    flag = attrs[col].map(lambda v: v is False or str(v).lower() in ("false", "0", "no"))
    return list(rec.catalog.item_ids[flag.to_numpy(dtype=bool)])


def adopt_online_state(rec, previous) -> None:
    rec.blocklist.add(previous.blocklist.ids)
    rec.unavailable.add(previous.unavailable.ids)
    rec.state.adopt(previous.state)
