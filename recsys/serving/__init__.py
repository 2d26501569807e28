"""Serving core: the Recommender the service, batch inference and offline evaluation all run.

Public API (docs/design.md): `Recommender` (recommend, recommend_batch, similar_items, record_feedback,
set_blocklist, set_unavailable, add_items, observer, version), `InvalidRequest` / `UnknownItem`, and
`recsys.serving.experiments` for A/B assignment, shadow scoring and the readout.
"""

from recsys.serving.errors import InvalidRequest, UnknownItem

__all__ = ["InvalidRequest", "UnknownItem", "Recommender"]


def __getattr__(name):  # lazy: importing the errors must not load the models' libraries
    if name == "Recommender":
        from recsys.serving.recommender import Recommender

        return Recommender
    raise AttributeError(name)
