"""The synthetic marketplace after its training period, with planted shifts: the current data of the loop.

Where this sits: `generate_travel_data` (recsys.data.synthetic) is the embedded default the model trains on
(days [0, days) from `start`). The drift and retrain pipelines then need "what happened since": on the
embedded default that is this module, which simulates any later day of the same world, day by day from a
generator seeded by (seed, day), so a window of days is the same whichever run asks for it and any range
is the concatenation of its days. A planted shift changes the world from `after_days` after the training
period on:

- `season`: the season turns: destination popularity flips (beach and ski swap their peaks), `strength` x;
- `launches`: a wave of `share` x catalogue new hotels opens over three days with a popularity boost
  (`strength`), taking a large share of views and bookings; they are unknown to the model trained before;
- `taste`: a `share` of users rotate their taste to other hotel categories, and care about it `strength` x
  more than before;
- `price`: hotels of a `share` of destinations move up a price tier and cost `strength` x more;
- `none`: the control: the same distribution continues (seasons keep turning as they always did).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from recsys.data.schema import TIMESTAMP, Dataset
from recsys.data.synthetic import (
    CATEGORIES,
    DESTINATIONS,
    Conditions,
    TravelWorld,
    _make_items,
    generate_travel_data,
    simulate,
    travel_world,
)
from recsys.data.validation import validate_dataset

KINDS = ("none", "season", "launches", "taste", "price")
DEFAULTS = {"season": {"strength": 2.0}, "launches": {"share": 0.15, "strength": 2.5},
            "taste": {"share": 0.5, "strength": 2.0}, "price": {"share": 0.4, "strength": 1.6}, "none": {}}


@dataclass(frozen=True)
class Shift:
    """A planted change; `after_days`: days after the end of the training period it starts."""

    kind: str = "none"
    after_days: float = 0.0
    share: float | None = None
    strength: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown shift kind {self.kind!r}; choose one of {list(KINDS)}")
        for name, value in DEFAULTS[self.kind].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    @classmethod
    def parse(cls, value: dict | str | None) -> Shift:
        if value is None or isinstance(value, str):
            return cls(value or "none")
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown shift setting(s) {sorted(unknown)}; known: {list(cls.__dataclass_fields__)}")
        return cls(**value)


def shifted_world(world: TravelWorld, shift: Shift) -> tuple[TravelWorld, Conditions, float]:
    """(the world with the shift's new hotels, the conditions it imposes, the day index it starts on)."""
    rng = np.random.default_rng([world.seed, 7919, KINDS.index(shift.kind)])
    start_day = world.days + float(shift.after_days)
    conditions = Conditions()
    if shift.kind == "launches":
        n_new = max(1, int(round(shift.share * world.n_items)))
        dest, cat, tier, stars, price, vec, _ = _make_items(rng, n_new, world.cat_vecs, world.n_latent)
        # spread over the catalogue's popularity like the existing hotels, then boosted by `strength`
        pop = (-0.9 * np.log1p(rng.permutation(n_new) * world.n_items / n_new)).astype(np.float32)
        world = replace(world, dest=np.r_[world.dest, dest], cat=np.r_[world.cat, cat],
                        tier=np.r_[world.tier, tier], stars=np.r_[world.stars, stars],
                        price=np.r_[world.price, price], vec=np.r_[world.vec, vec], pop=np.r_[world.pop, pop],
                        launch=np.r_[world.launch, start_day + rng.uniform(0, 3, n_new)])
        conditions.pop_bonus = np.r_[np.zeros(world.n_items), np.full(n_new, shift.strength)]
    elif shift.kind == "taste":
        users = rng.random(world.n_users) < shift.share
        fav = rng.integers(0, len(CATEGORIES), (world.n_users, 2))
        noise = rng.normal(0, world.n_latent ** -0.5, world.taste.shape)
        conditions.taste_users = users
        conditions.taste_shifted = (shift.strength * (world.cat_vecs[fav[:, 0]] + 0.5 * world.cat_vecs[fav[:, 1]]
                                                      + 0.6 * noise)).astype(np.float32)
    elif shift.kind == "price":
        moved = rng.random(len(DESTINATIONS)) < shift.share
        hit = moved[world.dest]
        conditions.tier_shifted = np.where(hit, np.minimum(world.tier + 1, 4), world.tier)
    return world, conditions, start_day


def _day_conditions(base: Conditions, shift: Shift, day: int, start_day: float) -> Conditions:
    on = np.array([day >= np.floor(start_day)])
    out = replace(base, shifted_day=on)
    if shift.kind == "season":
        out.season_factor = np.where(on, -shift.strength, 1.0)
    return out


def window_items(world: TravelWorld, shift: Shift, conditions: Conditions, start_day: float,
                 end_day: float) -> pd.DataFrame:
    """The catalogue as of `end_day`: shifted prices once the shift started, launched hotels once open."""
    items = world.items_frame()
    if end_day <= start_day:
        return items.iloc[: world.n_items].reset_index(drop=True)
    if conditions.tier_shifted is not None:
        moved = conditions.tier_shifted != world.tier
        items.loc[moved, "price_tier"] = conditions.tier_shifted[moved]
        items.loc[moved, "price"] = np.round(items.loc[moved, "price"] * shift.strength, 2)
    return items


def generate_days(params: dict, first_day: int, n_days: int, shift: Shift | dict | str | None = None,
                  replay_training_period: bool = False) -> Dataset:
    """Interactions on days [first_day, first_day + n_days) of the synthetic world `params` describes
    (the `source_params` of configs/train.yaml), days after the training period under `shift`. The daily
    volume continues the training period's (n_events / days), with its weekend bump.
    `replay_training_period`: also simulate days of the training period this way (a counterfactual
    history, e.g. with the shift in force all along: benchmarks/drift_loop.py's reference model); the
    training data itself always comes from `generate_travel_data`."""
    shift = shift if isinstance(shift, Shift) else Shift.parse(shift)
    keys = ("n_users", "n_items", "seed", "start", "days", "n_latent")
    world, _ = travel_world(**{k: params[k] for k in keys if k in params})
    world, conditions, start_day = shifted_world(world, shift)
    per_day = params.get("n_events", 100_000) / world.days
    frames = []
    for day in range(first_day, first_day + n_days):
        if day < world.days and not replay_training_period:
            raise ValueError(f"day {day} is inside the training period (days 0..{world.days - 1}): "
                             "use generate_travel_data for it")
        weekend = (world.start.dayofweek + day) % 7 >= 5
        n = max(1, int(round(per_day * (1.2 if weekend else 1.0) / (1 + 0.2 * 2 / 7))))
        rng = np.random.default_rng([world.seed, 104729, day])
        frames.append(simulate(world, rng, day, 1, n, _day_conditions(conditions, shift, day, start_day),
                               session_prefix=f"d{day:04d}s"))
    interactions = pd.concat(frames, ignore_index=True) if frames else simulate(world, np.random.default_rng(0), 0, 1, 1).iloc[:0]
    items = window_items(world, shift, conditions, start_day, first_day + n_days)
    return validate_dataset(Dataset(interactions, items, world.users_frame(), name=f"synthetic-travel+{shift.kind}"))


def travel_timeline(params: dict, start: pd.Timestamp, end: pd.Timestamp, shift=None) -> Dataset:
    """Interactions with timestamps in [start, end): the training period's from `generate_travel_data`,
    later days from `generate_days` (whole days are simulated, then cut to the range)."""
    params = dict(params)
    shift = shift if isinstance(shift, Shift) else Shift.parse(shift or params.pop("shift", None))
    params.pop("shift", None)
    origin = pd.Timestamp(params.get("start", "2025-01-01"), tz="UTC")
    days = int(params.get("days", 180))
    first = max(int((start - origin) // pd.Timedelta(days=1)), 0)
    last = int(np.ceil((end - origin) / pd.Timedelta(days=1)))
    parts, items, users = [], None, None
    if last <= first:  # an empty range: the catalogue as of `end`, no events
        later = generate_days(params, max(first, days), 1, shift) if first >= days else generate_travel_data(**params)
        return Dataset(later.interactions.iloc[:0], later.items, later.users, name=f"synthetic-travel+{shift.kind}")
    if first < days:
        base = generate_travel_data(**{k: v for k, v in params.items()})
        parts.append(base.interactions)
        items, users = base.items, base.users
    if last > days:
        later = generate_days(params, max(first, days), last - max(first, days), shift)
        parts.append(later.interactions)
        items, users = later.items, later.users
    interactions = pd.concat(parts, ignore_index=True)
    keep = (interactions[TIMESTAMP] >= start) & (interactions[TIMESTAMP] < end)
    return Dataset(interactions[keep].reset_index(drop=True), items, users, name=f"synthetic-travel+{shift.kind}")
