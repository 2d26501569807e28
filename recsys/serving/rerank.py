"""The re-rank stage: from the ranker's scores to the page the user sees.

retrieve -> filter -> rank -> RE-RANK. Works on a pool of each user's best-scored candidates:
1. relevance = ranker score min-max normalised to [0, 1] within the pool, so rule amounts and the diversity
   weight mean the same thing whatever the ranker's scale;
2. business rules from config: `boost` adds to the relevance of matching items, `bury` puts matching items
   after every other item of the pool;
3. MMR (Carbonell & Goldstein, 1998): pick the item maximising (1 - w) * relevance - w * max similarity to
   the items already picked; w = `mmr_weight` (0 = pure relevance order). Similarity is the cosine of the
   two-tower item vectors or equality of a category column;
4. `pin` rules put a named item at a fixed slot when the filters allow it for this user.
`Pages` is the stage as a request runs it on a ranked list: the page is a function of the candidates the
filters left at the head of the list, so it is kept on the list (`recsys.serving.ranked.Page`) and a request
whose filters leave the same head gets it without re-ranking or explaining again.
Hand-written (a few lines of numpy): no maintained library does MMR over a precomputed pool this cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.serving.context import ContextFilter
from recsys.serving.errors import InvalidRequest
from recsys.serving.explain import rule_text
from recsys.serving.ranked import Page
from recsys.serving.slate import Slate

BURY = 1e3  # relevance offset that puts buried items after all others (relevance + boosts is O(1))
RULE_ACTIONS = ("boost", "bury", "pin")


@dataclass
class Rule:
    action: str
    mask: np.ndarray | None = None  # boost / bury: catalogue positions it applies to
    amount: float = 0.0
    position: int = -1  # pin: the catalogue position of the pinned item (-1 = not in the catalogue)
    slot: int = 1
    label: str = ""


def parse_rules(rules: list[dict], context_filter: ContextFilter, index: dict[str, int]) -> list[Rule]:
    """Rules from config. boost: {action: boost, where: {<context filter>} or items: [ids], amount: 0.2};
    bury: {action: bury, where/items}; pin: {action: pin, item_id: id, slot: 1 (1-based)}."""
    out = []
    for n, spec in enumerate(rules or []):
        name = f"rules[{n}]"
        if not isinstance(spec, dict) or spec.get("action") not in RULE_ACTIONS:
            raise ValueError(f"{name}: needs action one of {RULE_ACTIONS}, got {spec!r}")
        allowed = {"boost": {"action", "where", "items", "amount", "label"},
                   "bury": {"action", "where", "items", "label"},
                   "pin": {"action", "item_id", "slot", "label"}}[spec["action"]]
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"{name}: unknown keys {sorted(unknown)} for a {spec['action']} rule")
        label = str(spec.get("label") or spec["action"])
        if spec["action"] == "pin":
            if "item_id" not in spec:
                raise ValueError(f"{name}: a pin rule needs item_id")
            slot = int(spec.get("slot", 1))
            if slot < 1:
                raise ValueError(f"{name}: slot is 1-based, got {slot}")
            out.append(Rule("pin", position=index.get(str(spec["item_id"]), -1), slot=slot, label=label))
            continue
        if ("where" in spec) == ("items" in spec):
            raise ValueError(f"{name}: give exactly one of where (attribute filter) or items (ids)")
        if "items" in spec:
            mask = np.zeros(context_filter.n, dtype=bool)
            pos = np.array([index.get(str(i), -1) for i in spec["items"]], dtype=np.int64)
            mask[pos[pos >= 0]] = True
        else:
            try:
                mask = context_filter.parse(spec["where"]).mask
            except InvalidRequest as err:
                raise ValueError(f"{name}.where: {err}") from None
            mask = np.ones(context_filter.n, dtype=bool) if mask is None else mask
        amount = float(spec.get("amount", 0.1)) if spec["action"] == "boost" else -BURY
        out.append(Rule(spec["action"], mask=mask, amount=amount, label=label))
    return out


def mmr(relevance: np.ndarray, similarity: np.ndarray | None, weight: float, k: int) -> np.ndarray:
    """Indices of `k` items chosen greedily by (1 - weight) * relevance - weight * max similarity to the
    items chosen so far. weight 0 (or no similarity) = relevance order, ties by index."""
    n = len(relevance)
    k = min(k, n)
    if weight <= 0 or similarity is None or n <= 1:
        return np.argsort(-relevance, kind="stable")[:k]
    chosen = np.empty(k, dtype=np.int64)
    # gain = (1 - weight) * relevance - weight * (max similarity to the chosen items; 0 before the first
    # pick), with chosen items at -inf: four array operations a pick (this runs on every request).
    base = (1.0 - weight) * relevance
    max_sim = np.zeros(n)
    for j in range(k):
        pick = int(np.argmax(base - weight * max_sim))
        chosen[j] = pick
        base[pick] = -np.inf
        if j == 0:
            max_sim = np.array(similarity[pick], dtype=np.float64)
        else:
            np.maximum(max_sim, similarity[pick], out=max_sim)
    return chosen


class Reranker:
    """Pool -> rules -> MMR -> pins, over catalogue positions. `vectors` (catalogue-aligned, unit norm) or
    `categories` (catalogue-aligned integer codes) define item similarity; neither = no diversity term."""

    def __init__(self, weight: float = 0.0, pool: int = 50, rules: list[Rule] | None = None,
                 vectors: np.ndarray | None = None, categories: np.ndarray | None = None):
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"rerank.mmr_weight must be in [0, 1), got {weight}")
        self.weight, self.pool, self.rules = float(weight), int(pool), list(rules or [])
        self.vectors, self.categories = vectors, categories
        self.pins = sorted((r for r in self.rules if r.action == "pin"), key=lambda r: r.slot)
        self.shifts = [r for r in self.rules if r.action in ("boost", "bury")]

    def similarity(self, positions: np.ndarray) -> np.ndarray | None:
        if self.vectors is not None:
            v = self.vectors[positions]
            return v @ v.T
        if self.categories is not None:
            c = self.categories[positions]
            return (c[:, None] == c[None, :]) & (c[:, None] >= 0)
        return None

    def rerank(self, positions: np.ndarray, scores: np.ndarray, k: int, allowed=None, return_index: bool = False):
        """positions/scores: a user's candidates (any order, finite scores). `allowed(position) -> bool`
        says whether a pinned item may be shown to this user. Returns (positions, scores, labels) of at
        most k items; labels name the rule that placed or moved an item ("<action>:<label>", "" for none).
        `return_index`: also each item's index in the input (-1: a pinned item that was not a candidate)."""
        order = np.argsort(-scores, kind="stable")[: max(self.pool, k)]
        pos, sc, index = positions[order], scores[order], order
        labels = np.full(len(pos), "", dtype=object)
        if len(pos):
            lo, hi = sc.min(), sc.max()
            rel = (sc - lo) / (hi - lo) if hi > lo else np.ones(len(sc))
            for rule in self.shifts:
                hit = rule.mask[pos]
                rel = rel + rule.amount * hit
                labels[hit & (labels == "")] = f"{rule.action}:{rule.label}"
            sim = self.similarity(pos) if self.weight > 0 else None
            chosen = mmr(rel, sim, self.weight, k)
            pos, sc, labels, index = pos[chosen], sc[chosen], labels[chosen], index[chosen]
        for rule in self.pins:
            if rule.position < 0 or (allowed is not None and not allowed(rule.position)):
                continue
            at = min(rule.slot - 1, len(pos))
            here = np.flatnonzero(pos == rule.position)
            score = sc[here[0]] if len(here) else (sc[at] if at < len(sc) else (sc[-1] if len(sc) else 0.0))
            keep = pos != rule.position
            pos, sc, labels, index = pos[keep], sc[keep], labels[keep], index[keep]
            at = min(at, len(pos))
            found = np.flatnonzero(positions == rule.position)
            pos, sc = np.insert(pos, at, rule.position), np.insert(sc, at, score)
            index = np.insert(index, at, found[0] if len(found) else -1)
            labels = np.insert(labels, at, f"pin:{rule.label}")
        if return_index:
            return pos[:k], sc[:k], labels[:k], index[:k]
        return pos[:k], sc[:k], labels[:k]


@dataclass
class Pick:
    """One user's page as the re-rank stage chose it: the slate (reasons still to come), each item's index
    in the ranked list (`rows`, -1: placed by a rule), the rules' labels, the memo key (None: a list computed
    for this request only, never memoised) and whether it came from the memo (then it is complete)."""
    slate: Slate
    rows: np.ndarray | None
    labels: list
    key: tuple | None
    memo: bool = False

    def page(self, explained: bool) -> Page:
        s = self.slate
        return Page(self.key, tuple(s.positions), tuple(s.scores), tuple(s.sources), tuple(s.stages),
                    tuple(self.labels), tuple(s.reasons) if explained else None)


class Pages:
    """The re-rank stage over ranked lists: `pick` one user's page from the candidates the filters kept."""

    def __init__(self, reranker: Reranker, source_names: list[str], stage: str):
        self.reranker, self.names, self.stage = reranker, source_names, stage

    def pick(self, entry, idx: np.ndarray, k: int, allowed, memoise: bool, explained: bool) -> Pick:
        """The page of `entry` (a recsys.serving.ranked.Ranked) over its candidates `idx` (kept by the
        filters, best first). `memoise`: reuse / key the list's last page (a cached list); `explained`: the
        page needs reasons (a memoised page without them is not reused)."""
        key = None
        if memoise:  # the page is a function of the pool that survived the filters
            pool = idx[: max(k, self.reranker.pool)]
            head = entry.positions[idx]
            pins = tuple((allowed(r.position), int(np.argmax(head == r.position)) if (head == r.position).any()
                          else -1) for r in self.reranker.pins)
            key = (k, pool.tobytes(), pins)
            page = entry.page
            if page is not None and page.key == key and (not explained or page.reasons is not None):
                slate = Slate(list(page.positions), list(page.scores), list(page.sources), list(page.stages),
                              list(page.reasons) if explained else [rule_text(lb) for lb in page.labels])
                entry.pending = None
                return Pick(slate, None, list(page.labels), key, memo=True)
        pos, sc, labels, at = self.reranker.rerank(entry.positions[idx], entry.scores[idx], k, allowed,
                                                   return_index=True)
        rows = np.where(at >= 0, idx[np.maximum(at, 0)], -1)  # each item's index in the entry (-1: a rule's)
        names = self.names
        sources = [names[o] if j >= 0 else "rule" for j, o in zip(rows.tolist(), entry.origin[rows].tolist())]
        slate = Slate([int(p) for p in pos], list(sc), sources,
                      ["pinned" if lb.startswith("pin:") else self.stage for lb in labels], list(labels))
        return Pick(slate, rows, list(labels), key)
