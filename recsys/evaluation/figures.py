"""The evaluation's and the data's pictures: matplotlib figures a report embeds and MLflow stores.

Where this sits: recsys.evaluation.report assembles them into the HTML pages the training pipeline's steps
return (the ZenML dashboard renders them) and the register step logs them to MLflow. Every function takes
plain tables and returns a `matplotlib.figure.Figure` (Agg backend: no display needed); `png(fig)` renders
one. matplotlib comes with MLflow.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

HEADLINE = ("ndcg@10", "recall@10", "mrr@10", "hit@10", "precision@10")  # one scale: coverage is on another
COLORS = ("#3b6fb6", "#b0b0b0", "#e3a33b", "#5aa469", "#b65a9e", "#6bb6c9")


def _figure(width: float = 7.0, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.spines[["top", "right"]].set_visible(False)  # every figure's frame: axes on the left and bottom only
    return fig, ax


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _grouped_bars(ax, table: pd.DataFrame, value_format: str = "{:.3f}") -> None:
    """One group per row of `table`, one bar per column (a model), labelled with its value."""
    n_groups, n_bars = table.shape
    width = 0.8 / max(n_bars, 1)
    x = np.arange(n_groups)
    for j, column in enumerate(table.columns):
        values = table[column].to_numpy(dtype=float)
        bars = ax.bar(x + (j - (n_bars - 1) / 2) * width, values, width, label=str(column),
                      color=COLORS[j % len(COLORS)])
        if n_groups * n_bars <= 24:
            ax.bar_label(bars, labels=[value_format.format(v) for v in values], fontsize=7, padding=1)
    ax.set_xticks(x, [str(i) for i in table.index])
    ax.set_ylim(0, float(np.nanmax(table.to_numpy(dtype=float), initial=0)) * 1.3 or 1)  # room for the legend


def metrics_vs_baselines(table: pd.DataFrame, metrics: Sequence[str] = HEADLINE):
    """The recommender (first row) beside each comparison model on the headline metrics."""
    shown = [m for m in metrics if m in table.columns]
    fig, ax = _figure()
    _grouped_bars(ax, table[shown].T)
    ax.set_title("Offline metrics on the test interactions: the recommender vs its baselines", fontsize=10)
    ax.legend(fontsize=8, frameon=False, ncols=len(table.index))
    return fig


def candidate_recall(recall: Mapping[str, float]):
    """Share of the valid interactions each candidate source proposes (the ranker's ceiling: union)."""
    names = [k.removeprefix("candidate_recall/") for k in recall if k.startswith("candidate_recall/")]
    values = [recall[f"candidate_recall/{n}"] for n in names]
    fig, ax = _figure(height=0.45 * len(names) + 1.0)
    bars = ax.barh(names, values, color=[COLORS[3] if n == "union" else COLORS[0] for n in names])
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=8, padding=2)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("recall of the valid interactions within the candidates")
    ax.set_title("Candidate recall by source", fontsize=10)
    return fig


def by_segment(table: pd.DataFrame, metric: str = "ndcg@10"):
    """`table`: one row per (segment, model) with `metric` and `users`; bars per segment."""
    wide = table.pivot(index="segment", columns="model", values=metric).reindex(pd.unique(table.segment))
    wide = wide[list(pd.unique(table.model))]
    fig, ax = _figure()
    _grouped_bars(ax, wide)
    users = table.drop_duplicates("segment").set_index("segment")["users"]
    ax.set_xticks(ax.get_xticks(), [f"{s}\n({users[s]} users)" for s in wide.index], fontsize=8)
    ax.set_title(f"{metric} by user activity (events known before the test period)", fontsize=10)
    ax.legend(fontsize=8, frameon=False, ncols=len(wide.columns))
    return fig


def score_distribution(scores: pd.DataFrame):
    """`scores`: score, hit (the item is among the user's test items) of every recommended item."""
    fig, ax = _figure()
    bins = np.histogram_bin_edges(scores.score.to_numpy(dtype=float), bins=40)
    for hit, label, color in ((False, "not in test", COLORS[1]), (True, "in the user's test items", COLORS[0])):
        values = scores.score[scores.hit == hit].to_numpy(dtype=float)
        ax.hist(values, bins=bins, alpha=0.75, label=f"{label} ({len(values)})", color=color, density=True)
    ax.set_xlabel("ranker score of a recommended item")
    ax.set_ylabel("density")
    ax.set_title("Score distribution of the top-k lists: hits vs misses", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return fig


def feature_importance(importance: pd.DataFrame, top: int = 15):
    """`importance`: feature, share (of the ranker's total gain)."""
    head = importance.nlargest(top, "share")
    fig, ax = _figure(height=0.28 * len(head) + 1.0)
    ax.barh(head.feature.astype(str), head.share, color=COLORS[0])
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("share of the ranker's total gain")
    ax.set_title(f"Ranker feature importance (top {len(head)} of {len(importance)})", fontsize=10)
    return fig


def gate(checks: pd.DataFrame):
    """`checks`: check, value, threshold, passed (one row per gate rule): the value as a bar, the bound as
    a tick beside it."""
    fig, ax = _figure(height=0.5 * len(checks) + 1.0)
    y = np.arange(len(checks))
    ax.barh(y, checks.value, color=[COLORS[3] if p else "#c0392b" for p in checks.passed], height=0.5)
    ax.scatter(checks.threshold, y, marker="|", s=600, color="black", zorder=3)
    for i, row in enumerate(checks.itertuples()):
        ax.annotate(f"{row.value:.4f} vs {row.threshold:.4f}", (max(row.value, row.threshold), i),
                    xytext=(6, -3), textcoords="offset points", fontsize=8)
    ax.set_yticks(y, checks.check, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, float(np.nanmax(np.r_[checks.value, checks.threshold])) * 1.35 or 1)
    ax.set_title("Quality gate: the value (bar; green: passed) beside its bound (black tick)", fontsize=10)
    return fig


def event_mix(interactions: pd.DataFrame):
    counts = interactions.event_type.value_counts()
    fig, ax = _figure(width=4.5)
    bars = ax.bar(counts.index.astype(str), counts.to_numpy(), color=COLORS[0])
    ax.bar_label(bars, labels=[f"{v / counts.sum():.1%}" for v in counts], fontsize=8)
    ax.set_yscale("log")
    ax.set_title(f"Event mix ({counts.sum():,} events)", fontsize=10)
    return fig


def activity_long_tail(interactions: pd.DataFrame):
    """Events per user and per item, sorted, on log axes: how concentrated the activity is."""
    fig, ax = _figure(width=4.5)
    for column, color in (("user_id", COLORS[0]), ("item_id", COLORS[2])):
        counts = np.sort(interactions[column].value_counts().to_numpy())[::-1]
        top = counts[: max(1, len(counts) // 10)].sum() / counts.sum()
        ax.plot(np.arange(1, len(counts) + 1), counts, color=color,
                label=f"{column.split('_')[0]}s: {len(counts):,}, top 10% have {top:.0%} of events")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rank")
    ax.set_ylabel("events")
    ax.set_title("Activity long tail", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return fig


def split_over_time(parts: Mapping[str, pd.DataFrame], freq: str = "W"):
    """Events per week of each part of the split (train / valid / test), stacked."""
    weekly = pd.DataFrame({name: frame.set_index(pd.DatetimeIndex(frame.timestamp)).resample(freq).size()
                           for name, frame in parts.items()}).fillna(0)
    fig, ax = _figure()
    bottom = np.zeros(len(weekly))
    for j, name in enumerate(weekly.columns):
        ax.bar(weekly.index, weekly[name], width=5, bottom=bottom, label=f"{name} ({int(weekly[name].sum()):,})",
               color=COLORS[j % len(COLORS)])
        bottom += weekly[name].to_numpy()
    ax.set_ylabel("events per week")
    ax.set_title("The split over time", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.autofmt_xdate()
    return fig
