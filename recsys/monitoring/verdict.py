"""What a drift check concludes about one window: typed signals and the verdict, and the retrain decision.

Where this sits: recsys.monitoring.drift measures the signals on a window (Evidently reports plus the
project's own ranking metrics); recsys.monitoring.policy turns this window's verdict and the earlier ones
into a `Decision`. Both are pydantic models so the ZenML steps return them as typed artifacts (the drift
pipeline's `drift_verdict`, the retrain pipeline's `retrain_decision`), MLflow logs their figures, and a
later run reads the earlier verdicts back.

Signal kinds: "drift" (the data or the model's output moved: alerts), "outcome" (the model's quality on the
window's delayed labels: the direct signal that retrains), "bias" (popularity bias, coverage and
personalization of what it recommends).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Optional

from pydantic import BaseModel, Field

SignalKind = Literal["drift", "outcome", "bias"]


class Signal(BaseModel):
    name: str
    kind: SignalKind
    value: Optional[float] = Field(None, description="The measured figure (None: could not be measured).")
    threshold: float = Field(description="The configured bound the value is compared with.")
    reference: Optional[float] = Field(None, description="The figure it is compared against, where there is one.")
    fired: bool = False
    detail: dict = Field(default_factory=dict, description="Per-column scores, cross-checks, counts.")

    def describe(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:.4f}"
        ref = "" if self.reference is None else f" (reference {self.reference:.4f})"
        return f"{self.name} = {value}{ref}, threshold {self.threshold:g}: {'FIRED' if self.fired else 'ok'}"


class DriftVerdict(BaseModel):
    """One window checked against the production model's training window."""

    model_name: str
    model_version: str = Field(description="The production model version the window was checked against.")
    window_start: datetime
    window_end: datetime
    reference_start: datetime
    reference_end: datetime
    n_events: int
    n_users: int
    signals: list[Signal]
    skipped: Optional[str] = Field(None, description="Why the window was not checked (too little data).")

    def signal(self, name: str) -> Optional[Signal]:
        return next((s for s in self.signals if s.name == name), None)

    def fired(self, kind: SignalKind | None = None) -> list[str]:
        return [s.name for s in self.signals if s.fired and (kind is None or s.kind == kind)]

    @property
    def drifted(self) -> bool:
        return bool(self.fired("drift") or self.fired("bias"))

    def summary(self) -> str:
        head = (f"window {self.window_start:%Y-%m-%d} .. {self.window_end:%Y-%m-%d} vs training window "
                f"{self.reference_start:%Y-%m-%d} .. {self.reference_end:%Y-%m-%d}, model {self.model_name} "
                f"v{self.model_version}: {self.n_events} events, {self.n_users} users")
        if self.skipped:
            return f"{head}; not checked: {self.skipped}"
        return "\n".join([head, *("  " + s.describe() for s in self.signals)])


class Decision(BaseModel):
    """The retrain decision for a window, with the reason either way."""

    retrain: bool
    alert: bool = Field(description="A signal fired: somebody should look, whether or not it retrains.")
    reason: str
    window_end: datetime
    consecutive: int = Field(0, description="Consecutive windows (this one included) meeting the retrain rule.")
    forced: bool = False
