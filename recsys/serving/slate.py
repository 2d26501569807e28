"""What the stages of one request hand each other: one user's list under construction.

`Slate` is one user's answer as the orchestrator (recsys/serving/recommender.py) builds it from the re-rank
and cold-start stages: catalogue positions with each item's score, source, stage and reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Slate:
    """One user's list under construction: catalogue positions and per-item metadata."""
    positions: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    sources: list = field(default_factory=list)
    stages: list = field(default_factory=list)
    reasons: list = field(default_factory=list)

    def extend(self, other: Slate) -> Slate:
        for name in ("positions", "scores", "sources", "stages", "reasons"):
            getattr(self, name).extend(getattr(other, name))
        return self
