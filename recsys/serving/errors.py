"""Request errors of the serving core: what a caller did wrong, as opposed to what broke.

The BentoML service (bentos/) maps `InvalidRequest` to HTTP 4xx with its message as the reason and
`UnknownItem` to 404; anything else escaping the Recommender is a server error. Subclassing ValueError keeps
plain-Python callers (notebooks, batch jobs) able to catch it as the usual bad-argument error.
"""

from __future__ import annotations


class InvalidRequest(ValueError):
    """A malformed request: unknown context filter, ill-typed value, k out of range, bad feedback event.
    `field` names the offending part of the request when there is one (e.g. "context.price_min")."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class UnknownItem(InvalidRequest):
    """An item id the catalogue does not hold (e.g. `similar_items` of an id never added)."""
