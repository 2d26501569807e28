"""The embedded default dataset: a synthetic travel / hotel marketplace with a planted preference model.

`load_dataset("synthetic", params)` calls `generate_travel_data`; every pipeline can therefore run without
downloads. The planted structure is what the models downstream should find, so each part carries signal:
- users have a latent taste (drawn around favourite hotel categories that depend on age band), a budget and
  a home region; hotels have a latent vector built from their category and destination;
- a session picks a user (a few users are far more active), then a destination (taste, nearness to home,
  season), then views hotels by a softmax over taste affinity + budget/price match + Zipf-ish popularity +
  a bonus for the session's destination; some views become clicks, at most one click per session a booking;
- time matters: beach destinations rise and ski destinations fall over a Jan-Jun window, traffic grows, and
  some hotels only launch during the window (item cold start in a temporal split).
Everything is numpy-vectorised per chunk of sessions, so 10M events take seconds per million, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.data.schema import EVENT_TYPE, ITEM_ID, SESSION_ID, TIMESTAMP, USER_ID, VALUE, Dataset
from recsys.data.validation import validate_dataset

CATEGORIES = ("beach", "city", "ski", "resort", "boutique", "hostel", "business", "family")
# Destination kind -> probability of each hotel category there (order of CATEGORIES).
_KIND_MIX = {
    "beach": (.45, 0, 0, .2, .1, .1, 0, .15),
    "city": (0, .35, 0, 0, .2, .15, .25, .05),
    "ski": (0, 0, .5, .15, .2, .05, 0, .1),
    "city_beach": (.25, .25, 0, .1, .15, .15, .1, 0),
    "resort": (.2, 0, 0, .45, .1, 0, .15, .1),
}
# name, region, season (+1 peaks in July, -1 peaks in January, 0 all year), kind, relative popularity
DESTINATIONS = (
    ("Barcelona", "Southern Europe", 1, "city_beach", 1.6), ("Mallorca", "Southern Europe", 1, "beach", 1.2),
    ("Santorini", "Southern Europe", 1, "beach", 0.8), ("Lisbon", "Southern Europe", 0, "city", 1.0),
    ("Rome", "Southern Europe", 0, "city", 1.4), ("Paris", "Western Europe", 0, "city", 2.0),
    ("London", "Western Europe", 0, "city", 1.8), ("Amsterdam", "Western Europe", 0, "city", 1.1),
    ("Copenhagen", "Northern Europe", 1, "city", 0.6), ("Lapland", "Northern Europe", -1, "ski", 0.5),
    ("Zermatt", "Alps", -1, "ski", 0.8), ("Chamonix", "Alps", -1, "ski", 0.9),
    ("St. Anton", "Alps", -1, "ski", 0.6), ("New York", "North America", 0, "city", 2.0),
    ("Miami", "North America", -1, "beach", 1.0), ("Aspen", "North America", -1, "ski", 0.6),
    ("Cancun", "Latin America", -1, "beach", 1.0), ("Rio de Janeiro", "Latin America", -1, "city_beach", 0.8),
    ("Bangkok", "Asia", 0, "city", 1.2), ("Bali", "Asia", 1, "beach", 1.0),
    ("Tokyo", "Asia", 0, "city", 1.4), ("Dubai", "Middle East", -1, "resort", 0.9),
)
_CONTINENT = {"Northern Europe": "EU", "Western Europe": "EU", "Southern Europe": "EU", "Alps": "EU",
              "North America": "AM", "Latin America": "AM", "Asia": "AS", "Middle East": "AS"}
HOME_REGIONS = ("Northern Europe", "Western Europe", "Southern Europe", "North America", "Latin America", "Asia")
_HOME_P = (.15, .3, .15, .2, .08, .12)
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
_AGE_P = (.18, .32, .24, .15, .11)
BUDGETS = ("low", "mid", "high")
_BUDGET_P = ((.55, .35, .10), (.30, .50, .20), (.20, .50, .30), (.15, .45, .40), (.20, .45, .35))  # by age
_BUDGET_TIER = (1.4, 2.5, 3.5)  # the price tier each budget is happiest with
_TASTE_STRENGTH = 1.5  # weight of the taste affinity in a user's liking of a hotel
_CLICK_LOGIT = (-2.2, 0.6)  # P(click | viewed) = sigmoid(a + b * liking)
# Favourite-category weights by age band (order of CATEGORIES): young -> hostels and cities, 35-44 ->
# family and resorts, older -> resorts and boutiques.
_FAV_P = ((.2, .25, .1, 0, .05, .35, .05, 0), (.2, .25, .15, .05, .15, .1, .1, 0),
          (.15, .1, .15, .2, .1, 0, .1, .2), (.15, .15, .15, .25, .15, 0, .1, .05),
          (.15, .2, .05, .3, .25, 0, .05, 0))
_CAT_TIER = (2.3, 2.5, 3.0, 3.4, 3.2, 1.0, 2.8, 2.3)  # mean price tier of each category
_TIER_PRICE = (55.0, 105.0, 190.0, 360.0)  # typical nightly price of tiers 1-4
EVENTS = ("view", "click", "booking")
_MAX_VIEWS = 12


def _softmax_choice(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """One draw per row of `logits` (Gumbel-max trick, vectorised)."""
    return np.argmax(logits - _log_exponential(rng, logits.shape), axis=1)


def _log_exponential(rng: np.random.Generator, shape) -> np.ndarray:
    """log(E), E ~ Exp(1): -log(E) is Gumbel noise; the floor avoids log(0) in float32."""
    return np.log(np.maximum(rng.standard_exponential(shape, dtype=np.float32), np.float32(1e-30)))


def _ids(prefix: str, n: int, min_width: int) -> np.ndarray:
    width = max(min_width, len(str(n - 1)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def _make_users(rng, n_users, cat_vecs, n_latent):
    age = rng.choice(len(AGE_BANDS), n_users, p=_AGE_P)
    budget = (rng.random(n_users)[:, None] > np.cumsum(np.array(_BUDGET_P), axis=1)[age]).sum(1).clip(0, 2)
    home = rng.choice(len(HOME_REGIONS), n_users, p=_HOME_P)
    fav = (rng.random((n_users, 2))[:, :, None] > np.cumsum(np.array(_FAV_P), axis=1)[age][:, None, :]).sum(2)
    fav = np.minimum(fav, len(CATEGORIES) - 1)
    noise = rng.normal(0, n_latent ** -0.5, (n_users, n_latent))
    taste = cat_vecs[fav[:, 0]] + 0.5 * cat_vecs[fav[:, 1]] + 0.6 * noise
    activity = rng.lognormal(0.0, 1.2, n_users)  # heavy tail: a few users produce many sessions
    return age, budget, home, taste.astype(np.float32), activity / activity.sum()


def _make_items(rng, n_items, cat_vecs, n_latent):
    n_dest = len(DESTINATIONS)
    dest_pop = np.array([d[4] for d in DESTINATIONS])
    dest = rng.choice(n_dest, n_items, p=dest_pop / dest_pop.sum())
    mix = np.array([_KIND_MIX[DESTINATIONS[d][3]] for d in range(n_dest)])
    cat = (rng.random(n_items)[:, None] > np.cumsum(mix, axis=1)[dest]).sum(1).clip(0, len(CATEGORIES) - 1)
    dest_cost = rng.normal(0, 0.4, n_dest)
    tier = np.clip(np.rint(np.array(_CAT_TIER)[cat] + dest_cost[dest] + rng.normal(0, 0.6, n_items)), 1, 4)
    stars = np.clip(np.rint(tier + 0.8 + rng.normal(0, 0.6, n_items)), 1, 5).astype(int)
    price_noise = np.exp(0.3 * dest_cost[dest] + rng.normal(0, 0.25, n_items))
    price = np.array(_TIER_PRICE)[tier.astype(int) - 1] * price_noise
    dest_vecs = rng.normal(0, n_latent ** -0.5, (n_dest, n_latent))
    vec = cat_vecs[cat] + 0.6 * dest_vecs[dest] + 0.5 * rng.normal(0, n_latent ** -0.5, (n_items, n_latent))
    pop = -0.9 * np.log1p(rng.permutation(n_items))  # Zipf-ish: log-popularity falls with a random rank
    return dest, cat, tier.astype(int), stars, np.round(price, 2), vec.astype(np.float32), pop.astype(np.float32)


@dataclass
class TravelWorld:
    """Everything about the marketplace that does not change from session to session: users, hotels,
    launch days. `generate_travel_data` simulates its first `days` days; recsys.data.shifts simulates the
    days after them (with or without a planted shift) from the same world."""

    n_users: int
    n_items: int
    seed: int
    start: pd.Timestamp
    days: int
    n_latent: int
    cat_vecs: np.ndarray
    age: np.ndarray
    budget: np.ndarray
    home: np.ndarray
    taste: np.ndarray
    activity: np.ndarray
    dest: np.ndarray
    cat: np.ndarray
    tier: np.ndarray
    stars: np.ndarray
    price: np.ndarray
    vec: np.ndarray
    pop: np.ndarray
    launch: np.ndarray  # day index each hotel appears (-1: from the start)

    def users_frame(self) -> pd.DataFrame:
        return pd.DataFrame({USER_ID: _ids("u", self.n_users, 5),
                             "home_region": np.array(HOME_REGIONS, object)[self.home],
                             "budget": np.array(BUDGETS, object)[self.budget],
                             "age_band": np.array(AGE_BANDS, object)[self.age]})

    def item_ids(self) -> np.ndarray:
        """Hotel ids; hotels added by a shift continue the numbering at the base catalogue's width."""
        width = max(4, len(str(self.n_items - 1)))
        return np.array([f"h{i:0{width}d}" for i in range(len(self.dest))], dtype=object)

    def items_frame(self) -> pd.DataFrame:
        return pd.DataFrame({ITEM_ID: self.item_ids(),
                             "destination": np.array([d[0] for d in DESTINATIONS], object)[self.dest],
                             "region": np.array([d[1] for d in DESTINATIONS], object)[self.dest],
                             "category": np.array(CATEGORIES, object)[self.cat],
                             "price_tier": self.tier, "stars": self.stars, "price": self.price})


def travel_world(n_users: int = 2000, n_items: int = 500, seed: int = 42, start: str = "2025-01-01",
                 days: int = 180, n_latent: int = 8) -> tuple[TravelWorld, np.random.Generator]:
    """The world of `seed`, and the generator positioned after drawing it (what the sessions draw from)."""
    if min(n_users, n_items, days, n_latent) < 1:
        raise ValueError("n_users, n_items, n_events, days and n_latent must all be >= 1")
    rng = np.random.default_rng(seed)
    cat_vecs = rng.normal(0, 1.0, (len(CATEGORIES), n_latent)) * n_latent ** -0.5 * 1.6
    age, budget, home, taste, activity = _make_users(rng, n_users, cat_vecs, n_latent)
    dest, cat, tier, stars, price, vec, pop = _make_items(rng, n_items, cat_vecs, n_latent)
    launch = np.where(rng.random(n_items) < 0.15, rng.uniform(0, days, n_items), -1.0)  # 15% launch later
    launch[np.argmax(pop)] = -1.0  # so that some hotel is always visible, even for tiny catalogues
    world = TravelWorld(n_users, n_items, seed, pd.Timestamp(start, tz="UTC"), days, n_latent, cat_vecs, age,
                        budget, home, taste, activity, dest, cat, tier, stars, price, vec, pop, launch)
    return world, rng


def generate_travel_data(n_users: int = 2000, n_items: int = 500, n_events: int = 100_000, seed: int = 42,
                         start: str = "2025-01-01", days: int = 180, n_latent: int = 8) -> Dataset:
    """Generate a validated travel `Dataset` with exactly `n_events` interactions (view / click / booking).

    Deterministic: the same arguments give identical frames. Interactions carry `session_id` and `value`
    (the amount paid for a booking = nightly price x nights; 1.0 for views and clicks, so it is not an event
    weight). Users: user_id, home_region, budget, age_band. Items: item_id, destination, region, category,
    price_tier (1-4), stars (1-5), price (typical nightly price).
    """
    if n_events < 1:
        raise ValueError("n_users, n_items, n_events, days and n_latent must all be >= 1")
    world, rng = travel_world(n_users, n_items, seed, start, days, n_latent)
    interactions = simulate(world, rng, 0, days, n_events)
    return validate_dataset(Dataset(interactions, world.items_frame(), world.users_frame(), name="synthetic-travel"))


@dataclass
class Conditions:
    """What a simulated day looks like beyond the world (recsys.data.shifts builds these for planted
    shifts): per-day season sign and strength, per-session taste overrides, per-day item tiers."""

    season_factor: np.ndarray | None = None  # (n_days,) multiplies the seasonal term (-1: flipped)
    taste_shifted: np.ndarray | None = None  # (n_users, n_latent) taste after the shift, or None
    taste_users: np.ndarray | None = None  # (n_users,) bool: whose taste shifts
    tier_shifted: np.ndarray | None = None  # (n_items,) price tiers after the shift, or None
    shifted_day: np.ndarray | None = None  # (n_days,) bool: the shift is in force on that day
    pop_bonus: np.ndarray | None = None  # (n_items,) extra log-popularity from the shift's start on


def _budget_fit() -> np.ndarray:
    """(budget, tier): how much a budget likes a price tier (0 at its favourite, negative away from it)."""
    return -0.8 * (np.arange(1, 5)[None, :] - np.array(_BUDGET_TIER)[:, None]) ** 2


def click_probability(world: TravelWorld, users: np.ndarray) -> np.ndarray:
    """(len(users), n_items): P(click | viewed) of every hotel for the users at these indices under the
    planted model before any shift (the rule `simulate` draws clicks with). For simulated users reacting to
    recommendations, e.g. benchmarks/canary_demo.py."""
    util = world.taste[users] @ (world.vec * _TASTE_STRENGTH).T + _budget_fit()[:, world.tier - 1][world.budget[users]]
    return 1 / (1 + np.exp(-(_CLICK_LOGIT[0] + _CLICK_LOGIT[1] * util)))


def simulate(world: TravelWorld, rng: np.random.Generator, day0: int, n_days: int, n_events: int,
             conditions: Conditions | None = None, session_prefix: str = "s") -> pd.DataFrame:
    """Exactly `n_events` interactions on days [day0, day0 + n_days) of the world (day indices from
    world.start), sessions drawn from `rng`. Without `conditions` this is the planted model as trained on;
    recsys.data.shifts passes planted changes."""
    w, c = world, conditions or Conditions()
    n_items, n_latent, n_dest = len(w.dest), w.n_latent, len(DESTINATIONS)
    absolute = day0 + np.arange(n_days)
    shifted = c.shifted_day if c.shifted_day is not None else np.zeros(n_days, bool)

    # Lookup tables computed once, so each chunk of sessions only gathers rows and adds (float32).
    budget_fit = _budget_fit()  # (budget, tier)
    budget_items = budget_fit[:, w.tier - 1].astype(np.float32)  # (3, n_items)
    budget_after = budget_fit[:, c.tier_shifted - 1].astype(np.float32) if c.tier_shifted is not None else None
    util_base = np.ascontiguousarray((w.vec * _TASTE_STRENGTH).T)  # (n_latent, n_items)
    dest_vec = np.stack([w.vec[w.dest == d].mean(0) if (w.dest == d).any() else np.zeros(n_latent)
                         for d in range(n_dest)]).astype(np.float32)
    dest_region = [DESTINATIONS[d][1] for d in range(n_dest)]
    home_bonus = np.array([[0.7 * (h == r) + 0.5 * (_CONTINENT.get(h) == _CONTINENT[r]) for r in dest_region]
                           for h in HOME_REGIONS], dtype=np.float32)
    doy = (w.start.dayofyear - 1 + absolute) % 365.25
    # (days, n_dest): +1 for a destination at its seasonal peak (mid July, or mid January for winter ones)
    season = np.array([d[2] for d in DESTINATIONS])[None, :] * np.cos(2 * np.pi * (doy[:, None] - 196) / 365.25)
    if c.season_factor is not None:
        season = season * c.season_factor[:, None]
    dest_day = (season + np.log(np.array([d[4] for d in DESTINATIONS]))[None, :]).astype(np.float32)
    day_items = (w.pop[None, :] + 0.5 * season[:, w.dest]).astype(np.float32)  # (days, n_items)
    if c.pop_bonus is not None:
        day_items[shifted] += c.pop_bonus[None, :].astype(np.float32)
    day_items[w.launch[None, :] > absolute[:, None]] = -np.inf  # invisible before launch
    dest_items = (3.0 * (w.dest[None, :] == np.arange(n_dest)[:, None])).astype(np.float32)  # session's destination
    weekend = (w.start.dayofweek + absolute) % 7 >= 5
    day_w = (1 + 0.3 * absolute / w.days) * np.where(weekend, 1.2, 1.0)  # growth + weekend bump
    hour_w = np.array([1, .5, .3, .2, .2, .3, .6, 1, 1.5, 2, 2, 2, 2.2, 2.2, 2, 2, 2, 2.2, 2.6, 3, 3.2, 3, 2.4, 1.6])

    # Output columns are preallocated and filled chunk by chunk: memory ~ 30 bytes per event before pandas.
    uu, ii = np.empty(n_events, np.int32), np.empty(n_events, np.int32)
    ns, st = np.empty(n_events, np.int64), np.empty(n_events, np.int8)
    val, ss = np.empty(n_events), np.empty(n_events, np.int64)
    starts, n_done, s_offset = [], 0, 0
    # ~16 MB per (sessions x items) float32 matrix; small requests need no more than one modest chunk.
    chunk = int(max(64, min(100_000, 4_000_000 // n_items, n_events // 3)))
    k = min(_MAX_VIEWS, n_items)
    while n_done < n_events:
        s = chunk
        su = rng.choice(w.n_users, s, p=w.activity)
        sday = rng.choice(n_days, s, p=day_w / day_w.sum())
        sstart = (day0 + sday) * 86400.0 + rng.choice(24, s, p=hour_w / hour_w.sum()) * 3600.0 + rng.uniform(0, 3600, s)
        taste = w.taste[su]
        if c.taste_users is not None:
            moved = c.taste_users[su] & shifted[sday]
            taste = np.where(moved[:, None], c.taste_shifted[su], taste)
        sdest = _softmax_choice(rng, dest_day[sday] + home_bonus[w.home[su]] + 0.8 * taste @ dest_vec.T)
        util = taste @ util_base  # (s, n_items): the user's own liking, reused for clicks and bookings
        if budget_after is not None:
            util += np.where(shifted[sday][:, None], budget_after[w.budget[su]], budget_items[w.budget[su]])
        else:
            util += budget_items[w.budget[su]]
        logit = day_items[sday]
        logit += util
        logit += dest_items[sdest]
        noisy = _log_exponential(rng, logit.shape)
        np.subtract(logit, noisy, out=noisy)  # Gumbel top-k = sampling views without replacement
        top = np.argpartition(-noisy, k - 1, axis=1)[:, :k] if k < n_items else np.tile(np.arange(n_items), (s, 1))
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(noisy, top, 1), axis=1), 1)  # view order
        visible = np.isfinite(np.take_along_axis(logit, top, 1)).sum(1)
        n_views = np.maximum(np.minimum(np.minimum(rng.geometric(0.3, s), k), visible), 1)  # mean ~3.3
        sess, pos = np.nonzero(np.arange(k)[None, :] < n_views[:, None])  # one row per view, session-major
        item = top[sess, pos]
        u = util[sess, item]
        click = rng.random(sess.size) < 1 / (1 + np.exp(-(_CLICK_LOGIT[0] + _CLICK_LOGIT[1] * u)))
        book = click & (rng.random(sess.size) < 1 / (1 + np.exp(-(-2.8 + 0.5 * u))))
        bi = np.flatnonzero(book)
        if bi.size:  # at most one booking per session: keep the first
            bi = bi[np.r_[True, sess[bi][1:] != sess[bi][:-1]]]
        # Rows: each view, then its click, then its booking; ordered by (session, view position, stage).
        stage = np.concatenate([np.zeros(sess.size, np.int8), np.ones(click.sum(), np.int8),
                                np.full(bi.size, 2, np.int8)])
        src = np.concatenate([np.arange(sess.size), np.flatnonzero(click), bi])
        order = np.lexsort((stage, src))
        stage, src = stage[order], src[order]
        rs = sess[src]
        # Seconds before each event: browsing between views, a quick click, a slower checkout.
        gap = np.select([stage == 0, stage == 1],
                        [5 + rng.exponential(45, src.size), 2 + rng.exponential(20, src.size)],
                        30 + rng.exponential(120, src.size))
        csum = np.cumsum(gap)
        first = np.r_[True, rs[1:] != rs[:-1]]
        before = np.repeat(csum[first] - gap[first], np.diff(np.r_[np.flatnonzero(first), rs.size]))
        nights = np.minimum(rng.geometric(0.35, src.size), 14)
        take = min(src.size, n_events - n_done)  # the last chunk is cut to hit n_events exactly
        out = slice(n_done, n_done + take)
        uu[out], ii[out], st[out] = su[rs][:take], item[src][:take], stage[:take]
        ns[out] = np.rint((sstart[rs] + csum - before)[:take] * 1e3).astype(np.int64) * 1_000_000  # ms
        val[out] = np.where(stage == 2, np.round(w.price[item[src]] * nights, 2), 1.0)[:take]
        ss[out] = rs[:take] + s_offset
        starts.append(sstart)
        n_done += take
        s_offset += s
    # Number sessions by start time so that session ids read chronologically.
    n_sess = int(ss[-1]) + 1
    rank = np.empty(n_sess, np.int64)
    rank[np.argsort(np.concatenate(starts)[:n_sess], kind="stable")] = np.arange(n_sess)
    order = np.argsort(ns, kind="stable")
    return pd.DataFrame({
        USER_ID: _ids("u", w.n_users, 5)[uu[order]],  # object arrays pointing at n_users shared strings
        ITEM_ID: w.item_ids()[ii[order]],
        TIMESTAMP: pd.DatetimeIndex((ns[order] + w.start.value).view("datetime64[ns]")).tz_localize("UTC"),
        EVENT_TYPE: np.array(EVENTS, dtype=object)[st[order]],
        VALUE: val[order],
        SESSION_ID: _ids(session_prefix, n_sess, 7)[rank[ss[order]]],
    }, copy=False)  # no block consolidation: avoids copying 10M-row object columns
