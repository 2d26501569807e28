"""recsys.retrieval: stage 1 of retrieve -> filter -> rank -> re-rank.

`two_tower` trains the user/item towers, `index` serves nearest-neighbour search over item vectors,
`sources` turns them (and simpler heuristics) into candidate lists. Names are imported lazily so that
importing one piece (e.g. the index in a service) does not pull in the others.
"""

from importlib import import_module

_EXPORTS = {
    "TwoTowerConfig": "two_tower",
    "TwoTowerModel": "two_tower",
    "train_two_tower": "two_tower",
    "AnnIndex": "index",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
