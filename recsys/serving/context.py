"""Request context: attribute filters on the catalogue and user-segment hints for the cold start.

A request's `context` is a flat dict. Each key is one of
- an item attribute (`destination`, `category`, `stars`, ...): a value or a non-empty list of values; an item
  passes if its value (any of its "|"-separated values for multi-valued attributes) is listed;
- `<numeric attribute>_min` / `<numeric attribute>_max` (`price_min`, `price_max`): an inclusive bound, or the
  attribute itself given as `{"min": .., "max": ..}`;
- a user attribute of the users table the model was trained with (`home_region`, `budget`, ...): not a
  filter but the segment whose trending items an unknown user gets (cold_start.py).
Anything else, or a value of the wrong type, raises `InvalidRequest` naming the key: a typo must not
silently return unfiltered results. Masks are built from per-value position lists computed once, so a
filter costs microseconds per request, not a pandas scan of the catalogue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real

import numpy as np
import pandas as pd

from recsys.serving.errors import InvalidRequest

MAX_VALUES = 1000  # longest value list one filter may carry (bounds request cost)
MULTI_SEP = "|"


@dataclass
class ParsedContext:
    """`mask`: catalogue positions allowed (None = all); `segment`: user attribute -> value;
    `filters`: the item-filter part, normalised (for explanations and cache keys)."""

    mask: np.ndarray | None = None
    segment: dict[str, str] = field(default_factory=dict)
    filters: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return (tuple(sorted((k, repr(v)) for k, v in self.filters.items())), tuple(sorted(self.segment.items())))


class ContextFilter:
    """Validates request contexts against item attributes (filters) and user attributes (segments)."""

    def __init__(self, attributes: pd.DataFrame, user_attributes: dict[str, list[str]] | None = None):
        self.n = len(attributes)
        self.numeric: dict[str, np.ndarray] = {}
        self.categorical: dict[str, dict[str, np.ndarray]] = {}
        for col in attributes.columns:
            s = attributes[col]
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                self.numeric[col] = s.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                self.categorical[col] = _inverted_index(s)
        self.user_attributes = {k: set(map(str, v)) for k, v in (user_attributes or {}).items()
                                if k not in self.numeric and k not in self.categorical}

    def describe(self) -> dict[str, str]:
        """Accepted keys and what they take (for API docs and error messages)."""
        out = {c: "value or list of values" for c in self.categorical}
        for c in self.numeric:
            out[c] = "number, list of numbers or {min, max}"
            out[f"{c}_min"] = out[f"{c}_max"] = "number (inclusive bound)"
        out.update({c: "user segment for the cold start" for c in self.user_attributes})
        return out

    def parse(self, context) -> ParsedContext:
        if context is None:
            return ParsedContext()
        if not isinstance(context, dict):
            raise InvalidRequest(f"context must be an object of filters, got {type(context).__name__}", "context")
        mask, segment, filters = None, {}, {}
        for key, value in context.items():
            where = f"context.{key}"
            if value is None:  # an explicit null means "no filter": clients often send every field
                continue
            if key in self.categorical:
                wanted = _values(value, where, (str, bool))
                part = self._categorical_mask(key, [str(v) for v in wanted])
            elif key in self.numeric:
                if isinstance(value, dict):
                    unknown = set(value) - {"min", "max"}
                    if unknown:
                        raise InvalidRequest(f"{where} takes keys min/max, not {sorted(unknown)}", where)
                    part = self._range(key, value.get("min"), value.get("max"), where)
                else:
                    wanted = [_number(v, where) for v in _values(value, where, (Real,))]
                    part = np.isin(self.numeric[key], wanted)
            elif key.endswith(("_min", "_max")) and key[:-4] in self.numeric:
                bound = _number(value, where)
                part = self._range(key[:-4], bound if key.endswith("_min") else None,
                                   bound if key.endswith("_max") else None, where)
            elif key in self.user_attributes:
                if not isinstance(value, str):
                    raise InvalidRequest(f"{where} must be a string, got {type(value).__name__}", where)
                segment[key] = value
                continue
            else:
                known = ", ".join(sorted(self.describe()))
                raise InvalidRequest(f"unknown context filter {key!r}; accepted: {known}", where)
            filters[key] = value
            mask = part if mask is None else mask & part
        return ParsedContext(mask, segment, filters)

    def _categorical_mask(self, column: str, values: list[str]) -> np.ndarray:
        index, mask = self.categorical[column], np.zeros(self.n, dtype=bool)
        for v in values:
            positions = index.get(v)
            if positions is not None:
                mask[positions[positions < self.n]] = True
        return mask

    def _range(self, column: str, lo, hi, where: str) -> np.ndarray:
        x = self.numeric[column]
        mask = ~np.isnan(x)  # items without the attribute never pass a range
        if lo is not None:
            mask &= x >= _number(lo, where)
        if hi is not None:
            mask &= x <= _number(hi, where)
        return mask

    def grow(self, attributes: pd.DataFrame) -> None:
        """Rebuild for a catalogue that gained items (Recommender.add_items); same columns or more."""
        users = {k: sorted(v) for k, v in self.user_attributes.items()}
        self.__init__(attributes, users)


def _inverted_index(s: pd.Series) -> dict[str, np.ndarray]:
    """value -> catalogue positions holding it ("|"-separated values count individually)."""
    values = s.astype("string").fillna("")
    tokens = values.str.split(MULTI_SEP) if values.str.contains(MULTI_SEP, regex=False).any() else values
    frame = pd.DataFrame({"v": tokens, "pos": np.arange(len(s))}).explode("v")
    frame = frame[frame.v.astype(str) != ""]
    return {str(v): g.to_numpy(np.int64) for v, g in frame.groupby("v", sort=False).pos}


def _values(value, where: str, types: tuple) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise InvalidRequest(f"{where} is an empty list; omit the filter to allow everything", where)
    if len(values) > MAX_VALUES:
        raise InvalidRequest(f"{where} lists {len(values)} values; at most {MAX_VALUES}", where)
    for v in values:
        if not isinstance(v, types) or isinstance(v, (dict, list)):
            raise InvalidRequest(f"{where} takes {'/'.join(t.__name__ for t in types)} values, got "
                                 f"{type(v).__name__}", where)
    return values


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise InvalidRequest(f"{where} must be a finite number, got {value!r}", where)
    return float(value)
