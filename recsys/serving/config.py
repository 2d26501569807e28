"""Serving settings of the Recommender: defaults, and validation that names the key at fault.

They come from the train config (`steps.assemble_recommender.parameters.params.serving`, passed through
`recsys.training.build_recommender`), are saved in the bundle's recommender.json and can be changed per
variant (`Recommender.variant(**overrides)`). Unknown keys raise: a misspelt setting must not silently fall
back to its default.
"""

from __future__ import annotations

import copy

DEFAULTS = {
    "batch_size": 256,  # users per block in recommend_batch (bounds the dense score matrices in memory)
    "rank": True,  # False: order by one source's score (the retrieval-only baselines)
    "score_source": None,  # that source (default: the first)
    "cold_start_source": "popular",  # kept for bundles written before cold_start.py; unused otherwise
    # Faiss OpenMP threads, set when a bundle is loaded: a request searches one query, where a second thread
    # only adds start-up and contention (0.14 vs 0.4-2 ms per search on the 2-core box); None = all cores.
    "search_threads": 1,
    # Score with the LightGBM boosters compiled to native code (lleaves; ~10x faster, same numbers; compiled
    # once per model and cached on disk, recsys/serving/compiled.py). False or no lleaves: LightGBM predict.
    "compile_ranker": True,
    "filters": {
        "seen_event_types": None,  # None: every interacted item is "seen"; e.g. [click, booking] allows re-views
        "blocklist_file": None,  # one item id per line (or a JSON list), re-read when it changes
        "blocklist_check_seconds": 1.0,
        "availability_column": "available",  # item attribute: false = unavailable (if the catalogue has it)
        "max_impressions": 3,  # impression fatigue: shown this often without engagement ...
        "impression_window_hours": 24.0,  # ... within this window -> suppressed; 0 impressions = off
        "record_impressions": True,  # recommend() records what it returns (recommend_batch never does)
        "max_users": 100_000,  # users whose impressions are kept (least recently shown dropped first)
    },
    "rerank": {
        "mmr_weight": 0.1,  # 0 = pure relevance; see docs/serving.md for the NDCG/diversity trade-off
        "pool": 30,  # best-scored candidates re-ranked per user
        "similarity": "auto",  # embedding (two-tower cosine) | category | none | auto (embedding if any)
        "category_column": "category",
    },
    "rules": [],  # business rules (rerank.parse_rules): boost / bury / pin
    "cold_start": {
        "window_days": 30.0,  # trending = interactions in this window before the newest training event
        "prior": 50.0,  # pseudo-events shrinking a segment's trend towards the global one
        "content_share": 0.3,  # share of cold-start slots for two-tower matches on the user's attributes
        "segment_columns": None,  # users-table columns that define segments (None: every categorical one)
        "pool": 100,  # trending / content items considered before re-ranking
    },
    # Ranked candidates per user (recsys/serving/ranked.py), kept until the user's history or the models
    # change; request-time filters, re-ranking and impressions still apply on every call.
    "cache": {
        "enabled": True,
        "max_mb": 256,  # memory budget, least recently used users out first (~4 KB a user at 220 candidates)
        # candidates explained beyond the re-rank pool (or k), so a list reaching a little deeper after
        # filtering needs no second pass; each costs ~10 us on a miss
        "explain_margin": 10,
        # A user paging down a list (impression fatigue) gets deeper explanations queued for the warm-up
        # thread before a page needs them: no request pays an explanation pass (the last ~10 of the 4,000
        # requests of the in-process mix), but the work is done earlier and for users who may not page on,
        # so a loaded server answers fewer requests (docs/serving.md, "In-process serving core"). Off: the
        # pass is paid on the request that first needs it.
        "explain_ahead": False,
    },
    "explain": {
        "enabled": True,  # reason texts in recommend() (recommend_batch never explains)
        "factors": 2,  # ranker feature contributions named per item
        "history_items": 20,  # recent history items searched for the "similar to X" anchor
        # Seed models whose contributions name the factors (null = all, what the score is made of). 1 halves
        # the explain stage (0.57 vs 1.09 ms CPU per request on the 10k bench) but names the same top
        # factor only 79% of the time (same top two: 59%), so the default stays faithful.
        "models": None,
    },
}


def resolve_config(config: dict | None, base: dict | None = None) -> dict:
    """`config` merged over `base` (default DEFAULTS) one level deep; unknown keys raise ValueError."""
    out = copy.deepcopy(base if base is not None else DEFAULTS)
    for key, value in (config or {}).items():
        if key not in DEFAULTS:
            raise ValueError(f"unknown serving setting {key!r}; known: {sorted(DEFAULTS)}")
        if isinstance(DEFAULTS[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"serving setting {key!r} must be a mapping, got {value!r}")
            unknown = set(value) - set(DEFAULTS[key])
            if unknown:
                raise ValueError(f"unknown serving setting(s) {sorted(f'{key}.{k}' for k in unknown)}; "
                                 f"known: {sorted(DEFAULTS[key])}")
            out[key].update(value)
        else:
            out[key] = value
    if not isinstance(out["rules"], list):
        raise ValueError("serving setting 'rules' must be a list")
    return out
