"""Training the staged recommender from a split: the functions the ZenML steps and the benchmarks call.

fit_candidate_generator -> fit_ranker -> build_recommender. Candidate sources learn from train; the ranker
learns to predict each user's valid interactions from candidates and features computed on train alone
(the valid items are masked like the rest of the history would be), so its labels sit right after the
history it sees, as the test items sit right after the history at evaluation and serving time.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from recsys.data.schema import DEFAULT_EVENT_WEIGHTS
from recsys.features.history import Catalog, History
from recsys.progress import Bar
from recsys.ranking.features import RankingFeatures
from recsys.ranking.model import RankingModel, candidate_labels
from recsys.ranking.rankers import make_ranker
from recsys.retrieval.candidates import CandidateGenerator, candidate_recall as _candidate_recall
from recsys.retrieval.sources import CoVisitationSource, ItemItemSource, PopularSource, TwoTowerSource
from recsys.serving.recommender import Recommender

log = logging.getLogger(__name__)

DEFAULT_SOURCES = {
    "item_item": {"n": 100, "l2": 500.0, "decay": 10.0},
    "co_visitation": {"n": 50, "window": 5, "decay": 3.0},
    "two_tower": {"n": 50, "history_length": 50},
    "popular": {"n": 30, "window_days": 30.0},
}
SOURCE_CLASSES = {"item_item": ItemItemSource, "co_visitation": CoVisitationSource, "popular": PopularSource,
                  "two_tower": TwoTowerSource}


def make_history(catalog: Catalog, *frames: pd.DataFrame, event_weights=None) -> History:
    history = History(catalog, event_weights or DEFAULT_EVENT_WEIGHTS)
    for frame in frames:
        history.add(frame)
    return history


def fit_candidate_generator(train, valid, items, users, two_tower=None, index=None,
                            params: dict | None = None) -> CandidateGenerator:
    """Candidate sources fitted on train. `params["sources"]` maps source name -> settings (n = how many
    candidates it proposes); a source set to null is dropped; two_tower needs the trained model."""
    params = params or {}
    catalog = Catalog.from_tables(items, train, valid)
    history = make_history(catalog, train, event_weights=params.get("event_weights"))
    settings = {**DEFAULT_SOURCES, **params.get("sources", {})}
    sources, n_per_source = [], {}
    for name, cfg in settings.items():
        if cfg is None or (cfg.get("source", name) == "two_tower" and two_tower is None):
            continue
        cfg = dict(cfg)
        kind = cfg.pop("source", name)  # several instances of one kind may run under different names
        n_per_source[name] = int(cfg.pop("n", 50))
        if kind == "two_tower":
            cfg.update(model=two_tower, index=index)
        source = SOURCE_CLASSES[kind](**cfg)
        source.name = name
        sources.append(source)
    return CandidateGenerator(catalog, sources, n_per_source).fit(history)


def candidate_recall(generator: CandidateGenerator, history: pd.DataFrame, target: pd.DataFrame,
                     n: int | None = None) -> dict[str, float]:
    """Recall of `target` within the candidates proposed from `history` (the ranker's ceiling)."""
    hist = make_history(generator.catalog, history)
    target = target[target.user_id.astype(str).isin(set(hist.users))]
    return _candidate_recall(generator, hist, target)


def ranker_training_set(generator: CandidateGenerator, train, valid, params: dict | None = None,
                        store=None) -> tuple[RankingFeatures, pd.DataFrame, np.ndarray, np.ndarray]:
    """(features, X, y, group): candidates from train histories, labelled by the valid interactions, one
    query group per user. Features are computed as of each user's last train interaction; with `store`
    (recsys.features.provider.StoreFeatures) the feature store's windowed features join in point-in-time
    at that moment, so no value from after it (where the labels are) reaches the training set.
    Query groups with no positive candidate teach nothing and are dropped."""
    params = params or {}
    catalog = generator.catalog
    weights = params.get("event_weights") or DEFAULT_EVENT_WEIGHTS
    history = make_history(catalog, train, event_weights=weights)
    target = valid[valid.user_id.astype(str).isin(set(history.users))]
    user_ids = list(pd.unique(target.user_id.astype(str)))
    features = RankingFeatures(**params.get("features", {}), store=store).fit(history, generator.score_names)
    X_parts, y_parts, groups = [], [], []
    with Bar(len(user_ids), "ranker training set", "user") as progress:
        for start in range(0, len(user_ids), 512):
            cands = generator.generate(user_ids[start:start + 512], history)
            X_parts.append(features.transform(cands, history))
            y_parts.append(candidate_labels(cands, catalog, target, weights if params.get("graded") else None))
            groups.append(cands.valid.sum(axis=1))
            progress.update(len(user_ids[start:start + 512]))
    X, y, group = pd.concat(X_parts, ignore_index=True), np.concatenate(y_parts), np.concatenate(groups)
    keep_group = np.add.reduceat(y, np.r_[0, np.cumsum(group)[:-1]]) > 0 if len(group) else group
    row_keep = np.repeat(keep_group, group)
    X, y, group = X[row_keep].reset_index(drop=True), y[row_keep], group[keep_group]
    log.info("ranker training set: %d rows, %d query groups, %.1f%% positive", len(y), len(group), 100 * y.mean())
    return features, X, y, group


def fit_ranker(generator: CandidateGenerator, train, valid, items, users,
               params: dict | None = None, store=None) -> tuple[RankingModel, pd.DataFrame]:
    """Learning-to-rank on `ranker_training_set` (`store`: optional feature-store provider, joined
    point-in-time). With `early_stopping` > 0 a random 20% of users hold out to pick the round count, then
    the model is refitted on all users with it; with 0 it trains `num_rounds` rounds on everyone."""
    params = params or {}
    features, X, y, group = ranker_training_set(generator, train, valid, params, store)
    kind, rounds = params.get("kind", "lightgbm"), int(params.get("num_rounds", 200))
    if params.get("early_stopping", 0) > 0:
        rng = np.random.default_rng(params.get("seed", 42))
        holdout = rng.random(len(group)) < params.get("holdout_fraction", 0.2)
        rows_h = np.repeat(holdout, group)
        probe = make_ranker(kind, params.get("params"), rounds, params["early_stopping"])
        with Bar(rounds, f"ranker {kind}: early stopping", "round") as progress:
            probe.fit(X[~rows_h], y[~rows_h], group[~holdout], X[rows_h], y[rows_h], group[holdout],
                      on_round=progress.update)
        curves = probe.curves
        rounds = max(int(probe.best_iteration * 1.1), 10)
        best = ", ".join(f"held-out {name} {max(values):.4f}" for name, values in curves.items() if values)
        log.info("ranker %s: early stopping on %d held-out users picked %d rounds%s", kind, holdout.sum(), rounds,
                 f" ({best})" if best else "")
    n_seeds = params.get("n_seeds", 3)
    with Bar(rounds * n_seeds, f"ranker {kind}: {n_seeds} seeds", "round") as progress:
        ranker = make_ranker(kind, params.get("params"), rounds, 0, n_seeds).fit(X, y, group, on_round=progress.update)
    if params.get("early_stopping", 0) > 0:
        ranker.curves = curves  # the learning curve that chose the round count (the refit has no held-out set)
    return RankingModel(features, ranker), ranker.feature_importance()


def build_recommender(generator: CandidateGenerator, ranking: RankingModel | None, items, users,
                      history: pd.DataFrame, params: dict | None = None, version: str = "dev") -> Recommender:
    """The staged recommender over the fitted parts; `history` is what it knows users have done."""
    params = params or {}
    hist = make_history(generator.catalog, history, event_weights=params.get("event_weights"))
    return Recommender(generator.catalog, generator, ranking, hist, params.get("serving"), version, users=users)


def comparison_models(recommender: Recommender, train: pd.DataFrame, history: pd.DataFrame | None = None) -> dict:
    """The baselines scored beside the staged recommender in one table: popularity (all-time counts in
    train) and each retrieval source alone, all through the same filter stage."""
    from recsys.evaluation.baselines import PopularityRecommender

    known = history if history is not None else train
    models = {"popularity": PopularityRecommender(train, known=known)}
    for source in recommender.generator.sources:
        if source.name in ("two_tower", "item_item"):
            models[f"{source.name}_only"] = recommender.variant(rank=False, score_source=source.name)
    return models


def refresh_recommender(recommender: Recommender, interactions: pd.DataFrame, refit: bool = True) -> Recommender:
    """Add interactions to what the recommender knows and, with `refit`, re-fit its cheap parts on the
    whole history: the item-item, co-visitation and popularity sources and the item statistics behind the
    ranking features. The two-tower model and the ranker stay as trained (the two-tower reads new history
    through its user tower). This is what registering a model after evaluation does with the held-out
    interactions, and what a scheduled refresh does with new events."""
    recommender.update_history(interactions)
    if refit:
        for source in recommender.generator.sources:
            if not isinstance(source, TwoTowerSource):
                source.fit(recommender.history)
        if recommender.ranking is not None:
            features = recommender.ranking.features
            features.fit(recommender.history, features.source_names)
        recommender.refresh_trends()
    return recommender


# ---- the whole chain, for the retrain loop and the refit of a model about to be registered ----

STAGES = ("train_retrieval", "build_ann_index", "generate_candidates", "train_ranker", "assemble_recommender")


def train_staged(train: pd.DataFrame, valid: pd.DataFrame, items, users, recipe: dict | None = None,
                 store=None) -> tuple[Recommender, dict, pd.DataFrame]:
    """The training pipeline's chain in one call (train_retrieval -> build_ann_index -> generate_candidates
    -> train_ranker -> assemble_recommender): what the retrain pipeline's challenger runs. `recipe` maps
    those step names to their `params` (as configs/train.yaml and a bundle's config.json record them);
    `train_retrieval: null` drops the two-tower. Returns (recommender knowing train + valid, the settings
    the validation chose -- what `refit_staged` reuses --, the ranker's feature importance)."""
    recipe = recipe or {}
    model = index = None
    if "train_retrieval" not in recipe or recipe["train_retrieval"] is not None:
        from recsys.retrieval.index import AnnIndex
        from recsys.retrieval.two_tower import TwoTowerConfig, train_two_tower

        model = train_two_tower(train, valid, items, users, TwoTowerConfig(**(recipe.get("train_retrieval") or {})))
        index = AnnIndex.build(model.item_embeddings, model.item_ids, **(recipe.get("build_ann_index") or {}))
    generator = fit_candidate_generator(train, valid, items, users, model, index, recipe.get("generate_candidates"))
    ranking, importance = fit_ranker(generator, train, valid, items, users, recipe.get("train_ranker"), store)
    history = pd.concat([train, valid], ignore_index=True)
    recommender = build_recommender(generator, ranking, items, users, history, recipe.get("assemble_recommender"))
    return recommender, chosen_settings(model, ranking), importance


def chosen_settings(two_tower, ranking: RankingModel | None) -> dict:
    """What validation chose: the two-tower's best epoch and the ranker's boosting rounds."""
    settings = {}
    if two_tower is not None and two_tower.history:
        recalls = [h.get("val_recall", float("nan")) for h in two_tower.history]
        finite = [i for i, r in enumerate(recalls) if r == r]
        settings["two_tower_epochs"] = (max(finite, key=lambda i: recalls[i]) if finite else len(recalls) - 1) + 1
    if ranking is not None:
        settings["ranker_rounds"] = int(ranking.ranker.num_rounds)
    return settings


def refit_staged(recommender: Recommender, settings: dict, recipe: dict | None, train: pd.DataFrame,
                 valid: pd.DataFrame, test: pd.DataFrame, items, users) -> Recommender:
    """The model to register, learnt from all of train + valid + test with the settings validation chose
    (no early stopping): the two-tower trained for `two_tower_epochs` on everything, the ranker relearnt
    for `ranker_rounds` with labels one step later (candidates from train + valid histories, labelled by
    test), every candidate source and item statistic fitted on everything. The ranker's candidates come from
    the evaluated two-tower (trained on train alone) so its labels never leak into a feature; serving then
    uses the refitted one. Serving settings are the evaluated recommender's."""
    recipe = dict(recipe or {})
    tower = next((s for s in recommender.generator.sources if isinstance(s, TwoTowerSource)), None)
    first_tower, first_index = (tower.model, tower.index) if tower is not None else (None, None)
    known = pd.concat([train, valid], ignore_index=True)
    everything = pd.concat([train, valid, test], ignore_index=True)
    ranker_params = dict(recipe.get("train_ranker") or {})
    ranking = recommender.ranking
    if ranking is not None and "ranker_rounds" in settings:
        labelled = fit_candidate_generator(known, test, items, users, first_tower, first_index,
                                           recipe.get("generate_candidates"))
        ranker_params.update(num_rounds=settings["ranker_rounds"], early_stopping=0)
        store = getattr(ranking.features, "store", None)
        ranking, _ = fit_ranker(labelled, known, test, items, users, ranker_params, store)
    model = index = None
    if first_tower is not None:
        from recsys.retrieval.index import AnnIndex
        from recsys.retrieval.two_tower import TwoTowerConfig, train_two_tower

        config = {**(recipe.get("train_retrieval") or {}), "epochs": int(settings.get("two_tower_epochs", 1))}
        model = train_two_tower(everything, None, items, users, TwoTowerConfig(**config))
        index = AnnIndex.build(model.item_embeddings, model.item_ids, **(recipe.get("build_ann_index") or {}))
    generator = fit_candidate_generator(everything, everything.iloc[:0], items, users, model, index,
                                        recipe.get("generate_candidates"))
    refit = Recommender(generator.catalog, generator, ranking,
                        make_history(generator.catalog, everything, event_weights=recommender.history.event_weights),
                        recommender.config, recommender.version, users=users)
    if ranking is not None:
        ranking.features.fit(refit.history, generator.score_names)
    log.info("refit on %d interactions (two-tower %s epochs, ranker %s rounds)", len(everything),
             settings.get("two_tower_epochs"), settings.get("ranker_rounds"))
    return refit


def train_on(interactions: pd.DataFrame, items, users, recipe: dict | None = None,
             split: dict | None = None) -> tuple[Recommender, dict]:
    """A production-ready model from one block of interactions, the way the training pipeline makes one:
    split (`split`: method and ratios, default per-user temporal 80/10/10), `train_staged` on train / valid,
    then `refit_staged` on all of it. What the retrain loop's challenger is. Returns (model, settings)."""
    from recsys.data.splits import split_interactions

    split = {"method": "temporal_user", "ratios": [0.8, 0.1, 0.1], **(split or {})}
    parts = split_interactions(interactions, split["method"], split["ratios"])
    log.info("training on %d interactions (train %d, valid %d, test %d)", len(interactions), len(parts.train),
             len(parts.valid), len(parts.test))
    evaluated, settings, _ = train_staged(parts.train, parts.valid, items, users, recipe)
    return refit_staged(evaluated, settings, recipe, parts.train, parts.valid, parts.test, items, users), settings


def absorb_window(model: Recommender, settings: dict, recipe: dict | None, before: pd.DataFrame,
                  window: pd.DataFrame, items, users) -> Recommender:
    """A challenger that won on the held-out window, refit to learn that window too (it was held out to
    compare it with the champion): `refit_staged` with the data before the window as history and the
    window as the ranker's labels, the two-tower and every source fitted on both."""
    return refit_staged(model, settings, recipe, before, before.iloc[:0], window, items, users)
