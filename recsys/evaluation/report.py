"""HTML pages of the training run: the evaluation report, the quality gate, the data summary.

Self-contained pages (figures embedded as PNG, no script, no network) that the ZenML dashboard renders
from the steps' HTML artifacts and MLflow stores beside the run; each builder also returns its figures by
name, so a caller can log them one by one (MLflow's image view). Figures come from
recsys.evaluation.figures, segment and sample tables from recsys.evaluation.analysis.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping

import pandas as pd

from recsys.data.schema import ITEM_ID, USER_ID
from recsys.evaluation import analysis, figures

STYLE = """<style>
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:16px;color:#222;max-width:1000px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 6px;border-bottom:1px solid #ddd}
p.note{color:#555;font-size:13px;margin:2px 0 8px}img{max-width:100%}
table{border-collapse:collapse;font-size:12px;margin:4px 0}td,th{border:1px solid #ddd;padding:2px 6px;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.user td:nth-child(2),.user td:nth-child(3){text-align:left}
.hit{background:#dff0d8}.fail{color:#c0392b;font-weight:bold}.ok{color:#2e7d32;font-weight:bold}
.user{display:inline-block;vertical-align:top;width:480px;margin:0 12px 12px 0}
</style>"""


def figure_html(fig) -> str:
    data = base64.b64encode(figures.png(fig)).decode()
    return f'<img src="data:image/png;base64,{data}">'


def table_html(frame: pd.DataFrame, digits: int = 4, index: bool = True) -> str:
    return frame.to_html(index=index, float_format=lambda v: f"{v:.{digits}f}", border=0, escape=True)


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """sections: (heading, note, body html)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'>{STYLE}</head><body>",
             f"<h1>{html.escape(title)}</h1><p class='note'>{html.escape(subtitle)}</p>"]
    for heading, note, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>" + (f"<p class='note'>{html.escape(note)}</p>" if note else "")
                     + body)
    return "".join(parts) + "</body></html>"


def evaluation_report(table: pd.DataFrame, recommendations: Mapping[str, pd.DataFrame], test: pd.DataFrame,
                      history: pd.DataFrame, items: pd.DataFrame, k: int = 10,
                      candidate_recall: Mapping[str, float] | None = None,
                      importance: pd.DataFrame | None = None) -> tuple[str, dict]:
    """(html, {name: figure}) for a recommender (the first model of `table` / `recommendations`) scored on
    `test` with `history` known; candidate recall and feature importance are added when given."""
    model = table.index[0]
    truth = test[[USER_ID, ITEM_ID]].astype(str).drop_duplicates()
    recommendations = {name: recs[recs["rank"] <= k] if "rank" in recs else recs
                       for name, recs in recommendations.items()}
    segments = analysis.activity_segments(history, pd.unique(truth[USER_ID]))
    by_segment = analysis.segment_metrics(recommendations, truth, segments, k)
    scores = analysis.scored_hits(recommendations[model], truth)
    headline = [f"{m}@{k}" for m in ("ndcg", "recall", "mrr", "hit", "precision")]
    made = {"metrics_vs_baselines": figures.metrics_vs_baselines(table, headline),
            "quality_by_segment": figures.by_segment(by_segment, f"ndcg@{k}")}
    if len(scores):
        made["score_distribution"] = figures.score_distribution(scores)
    if candidate_recall:
        made["candidate_recall"] = figures.candidate_recall(candidate_recall)
    if importance is not None and len(importance):
        made["feature_importance"] = figures.feature_importance(importance)
    shown = table[[c for c in table.columns if c.endswith(f"@{k}")]]
    sections = [
        ("Metrics beside the baselines", f"@{k}; every model answers through recommend_batch with the same "
         "history (train + valid) and the same test users.", figure_html(made["metrics_vs_baselines"])
         + table_html(shown)),
        ("Quality by user segment", "Segments by the number of events known before the test period; cold "
         "users (1-2 events) are where popularity and the cold-start path matter.",
         figure_html(made["quality_by_segment"]) + table_html(_wide(by_segment, k)))]
    if "candidate_recall" in made:
        sections.append(("Candidate recall by source", "Share of the valid interactions within each source's "
                         "candidates: the union is the ranker's ceiling.", figure_html(made["candidate_recall"])))
    if "score_distribution" in made:
        sections.append(("Score distribution", f"Ranker scores of the top-{k} lists; the further the hits sit "
                         "to the right of the misses, the better the ranking separates them.",
                         figure_html(made["score_distribution"])))
    if "feature_importance" in made:
        sections.append(("Feature importance", "Share of the ranker's total split gain per feature.",
                         figure_html(made["feature_importance"])))
    samples = analysis.sample_users(recommendations[model], truth, segments)
    stories = [analysis.user_story(u, recommendations[model], truth, history, items) for u in samples]
    sections.append(("Sample recommendations", "A few test users across the segments: their last known events, "
                     "what they did in the test period, and the list (green: a test item).",
                     "".join(_story_html(s) for s in stories)))
    title = f"Offline evaluation: {model} vs {', '.join(map(str, table.index[1:])) or 'no baseline'}"
    subtitle = (f"{truth[USER_ID].nunique():,} test users, {len(test):,} test interactions, "
                f"{len(history):,} known events, {len(items):,} items")
    return page(title, subtitle, sections), made


def _wide(by_segment: pd.DataFrame, k: int) -> pd.DataFrame:
    """Segments as rows: users, then ndcg@k and recall@k per model."""
    segments, models = pd.unique(by_segment.segment), pd.unique(by_segment.model)
    wide = by_segment.set_index(["segment", "model"])
    out = pd.DataFrame({"users": wide.xs(models[0], level="model")["users"]}).reindex(segments)
    for metric in (f"ndcg@{k}", f"recall@{k}"):
        for model in models:
            out[f"{metric} {model}"] = wide.xs(model, level="model")[metric].reindex(segments)
    return out


def _story_html(story: dict) -> str:
    rows = "".join(f"<tr class='{'hit' if r['hit'] else ''}'><td>{r['rank']}</td><td>{html.escape(r['item'])}</td>"
                   f"<td>{html.escape(str(r['source']))}</td><td>{r['score']:.3f}</td></tr>" for r in story["list"])
    return (f"<div class='user'><b>{html.escape(story['user'])}</b> ({story['events']} known events)<br>"
            f"<small>last: {html.escape('; '.join(story['history']))}<br>"
            f"test: {html.escape('; '.join(story['test']))}</small>"
            f"<table><tr><th>#</th><th>item</th><th>source</th><th>score</th></tr>{rows}</table></div>")


def gate_report(checks: pd.DataFrame, passed: bool) -> tuple[str, dict]:
    """The gate's checks (check, value, threshold, kind, passed) as a figure and a table."""
    made = {"quality_gate": figures.gate(checks)} if len(checks) else {}
    verdict = "<p class='ok'>PASSED: the model may be registered.</p>" if passed else \
        "<p class='fail'>FAILED: nothing is registered.</p>"
    shown = checks.assign(passed=checks.passed.map({True: "ok", False: "FAIL"}))
    body = verdict + (figure_html(made["quality_gate"]) if made else "<p>(no checks configured)</p>")
    return page("Quality gate", "Thresholds from the training config (quality_gate.thresholds) beside the "
                "recommender's values", [("Checks", "", body + table_html(shown, index=False))]), made


def data_report(interactions: pd.DataFrame, parts: Mapping[str, pd.DataFrame]) -> tuple[str, dict]:
    """Event mix, activity long tail and the split over time of the validated interactions."""
    made = {"event_mix": figures.event_mix(interactions), "activity_long_tail": figures.activity_long_tail(interactions),
            "split_over_time": figures.split_over_time(parts)}
    per_user = interactions[USER_ID].value_counts()
    facts = pd.DataFrame({"value": [
        f"{len(interactions):,}", f"{interactions[USER_ID].nunique():,}", f"{interactions[ITEM_ID].nunique():,}",
        f"{interactions.timestamp.min():%Y-%m-%d} .. {interactions.timestamp.max():%Y-%m-%d}",
        f"{per_user.median():.0f} (mean {per_user.mean():.1f}, max {per_user.max():,})",
        f"{1 - len(interactions[[USER_ID, ITEM_ID]].drop_duplicates()) / max(per_user.size * interactions[ITEM_ID].nunique(), 1):.4%}",
        ", ".join(f"{name} {len(frame):,}" for name, frame in parts.items())]},
        index=["events", "users", "items", "time span", "events per user (median)", "sparsity", "split"])
    sections = [("The data", "", table_html(facts)),
                ("Event mix and activity", "", figure_html(made["event_mix"]) + figure_html(made["activity_long_tail"])),
                ("Split over time", "", figure_html(made["split_over_time"]))]
    return page("Data summary", "The validated interactions the models learn from and are scored on", sections), made
