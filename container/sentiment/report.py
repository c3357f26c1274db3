"""The reports a person opens: each one self-contained HTML file with inline SVG plots.

The evaluation report (training curves, confusion matrix, ROC curve, calibration diagram) and the drift
report (`sentiment-drift`: each figure's verdict and rule, length bins and shares against the model card,
requests per hour), drawn as plain SVG (no plotting library, no scripts, nothing fetched). Every piece
of text is escaped.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT, MARGIN = 360, 260, 44
COLOURS = ("#1f6feb", "#d1242f", "#1a7f37", "#8250df")


def render_report(
    title: str, metrics: dict[str, Any], history: Sequence[dict[str, float]], details: dict[str, Any]
) -> str:
    """A complete HTML page for `metrics` (from `sentiment.evaluation.evaluate`) and training `history`."""
    summary = "".join(
        f"<tr><th>{escape(name)}</th><td>{_number(metrics[key])}</td></tr>"
        for name, key in (
            ("Accuracy", "accuracy"),
            ("Precision", "precision"),
            ("Recall", "recall"),
            ("F1", "f1"),
            ("ROC-AUC", "roc_auc"),
            ("Log-loss", "log_loss"),
            ("Brier score", "brier"),
            ("Expected calibration error", "expected_calibration_error"),
            ("Reviews", "reviews"),
        )
    )
    about = "".join(
        f"<tr><th>{escape(str(key))}</th><td>{escape(str(value))}</td></tr>" for key, value in details.items()
    )
    curve = metrics["roc_curve"]
    calibration = [b for b in metrics["calibration"] if b["count"]]
    plots = [
        _figure(
            "ROC curve",
            _chart(
                {"model": (curve["false_positive_rate"], curve["true_positive_rate"])},
                "false positive rate",
                "true positive rate",
                diagonal=True,
            ),
        ),
        _figure(
            "Calibration",
            _chart(
                {"model": ([b["mean_score"] for b in calibration], [b["positive_rate"] for b in calibration])},
                "mean predicted probability",
                "share positive",
                diagonal=True,
                markers=True,
            ),
        ),
        _figure("Confusion matrix", _confusion(metrics["confusion"])),
    ]
    if history:
        epochs = [h["epoch"] for h in history]
        plots.insert(
            0,
            _figure(
                "Training loss",
                _chart(
                    {name: (epochs, [h[name] for h in history]) for name in ("train_loss", "val_loss")},
                    "epoch",
                    "loss",
                    markers=True,
                ),
            ),
        )
        plots.insert(
            1,
            _figure(
                "Validation accuracy",
                _chart({"val_acc": (epochs, [h["val_acc"] for h in history])}, "epoch", "accuracy", markers=True),
            ),
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1180px; padding: 0 1rem; color: #1f2328; }}
table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; }}
th, td {{ text-align: left; padding: .25rem .8rem; border-bottom: 1px solid #d0d7de; }}
td {{ font-variant-numeric: tabular-nums; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 1.5rem; }}
figure {{ margin: 0; }} figcaption {{ font-weight: 600; margin-bottom: .3rem; }}
</style></head><body>
<h1>{escape(title)}</h1>
<h2>Metrics</h2><table>{summary}</table>
<h2>Plots</h2><div class="plots">{"".join(plots)}</div>
<h2>About this run</h2><table>{about}</table>
</body></html>
"""


def _number(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4f}" if isinstance(value, float) else escape(str(value))


def _figure(caption: str, body: str) -> str:
    return f"<figure><figcaption>{escape(caption)}</figcaption>{body}</figure>"


def _chart(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    x_label: str,
    y_label: str,
    diagonal: bool = False,
    markers: bool = False,
) -> str:
    """A line chart of each series, axes scaled to the data (0-1 when `diagonal`)."""
    xs = [x for points, _ in series.values() for x in points]
    ys = [y for _, points in series.values() for y in points]
    x_low, x_high = (0.0, 1.0) if diagonal else (min(xs, default=0.0), max(xs, default=1.0))
    y_low, y_high = (0.0, 1.0) if diagonal else (min(ys, default=0.0), max(ys, default=1.0))
    x_high, y_high = (x_high if x_high > x_low else x_low + 1), (y_high if y_high > y_low else y_low + 1)

    def point(x: float, y: float) -> str:
        px = MARGIN + (x - x_low) / (x_high - x_low) * (WIDTH - 1.5 * MARGIN)
        py = HEIGHT - MARGIN - (y - y_low) / (y_high - y_low) * (HEIGHT - 1.5 * MARGIN)
        return f"{px:.1f},{py:.1f}"

    bottom, top, right = HEIGHT - MARGIN, MARGIN / 2, WIDTH - MARGIN / 2
    parts = [
        f'<line x1="{MARGIN}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#57606a"/>',
        f'<line x1="{MARGIN}" y1="{top}" x2="{MARGIN}" y2="{bottom}" stroke="#57606a"/>',
        _text(WIDTH / 2, HEIGHT - 8, x_label),
        _text(12, HEIGHT / 2, y_label, transform=f"rotate(-90 12 {HEIGHT / 2})"),
        _text(MARGIN - 4, bottom + 4, f"{y_low:.3g}", anchor="end", size=10),
        _text(MARGIN - 4, top + 4, f"{y_high:.3g}", anchor="end", size=10),
        _text(MARGIN, bottom + 14, f"{x_low:.3g}", size=10),
        _text(right, bottom + 14, f"{x_high:.3g}", size=10),
    ]
    if diagonal:
        parts.append(
            f'<polyline points="{point(0, 0)} {point(1, 1)}" fill="none" stroke="#8c959f" stroke-dasharray="4"/>'
        )
    for index, (name, (x_values, y_values)) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        points = [point(x, y) for x, y in zip(x_values, y_values, strict=True)]
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="2"/>')
        if markers:
            parts.extend(
                f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3" fill="{colour}"/>' for p in points
            )
        parts.append(_text(WIDTH - MARGIN, top + 14 * (index + 1), name, anchor="end", size=11, fill=colour))
    return f'<svg width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">{"".join(parts)}</svg>'


def _text(x: float, y: float, content: str, anchor: str = "middle", size: int = 12, **attributes: str) -> str:
    extra = "".join(f' {name}="{escape(value)}"' for name, value in attributes.items())
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}" font-size="{size}"{extra}>{escape(content)}</text>'


def _confusion(confusion: dict[str, int]) -> str:
    """A 2x2 grid, actual labels down, predicted across; shading grows with each cell's share."""
    total = max(1, sum(confusion.values()))
    cells = {
        ("positive", "positive"): confusion["true_positive"],
        ("positive", "negative"): confusion["false_negative"],
        ("negative", "positive"): confusion["false_positive"],
        ("negative", "negative"): confusion["true_negative"],
    }
    size, left, top = 90, 90, 40
    parts = [
        _text(left + size, 18, "predicted"),
        _text(14, top + size, "actual", transform=f"rotate(-90 14 {top + size})"),
    ]
    labels = ("positive", "negative")
    for index, label in enumerate(labels):
        parts.append(_text(left + size * index + size / 2, top - 6, label, size=11))
        parts.append(_text(left - 6, top + size * index + size / 2, label, anchor="end", size=11))
    for (actual, predicted), count in cells.items():
        x, y = left + size * labels.index(predicted), top + size * labels.index(actual)
        colour = COLOURS[0] if actual == predicted else COLOURS[1]
        opacity = 0.1 + 0.8 * count / total
        parts.append(
            f'<rect x="{x}" y="{y}" width="{size}" height="{size}" fill="{colour}" fill-opacity="{opacity:.2f}"/>'
        )
        parts.append(_text(x + size / 2, y + size / 2 + 5, f"{count:,}", size=14))
    return f'<svg width="{left + 2 * size + 10}" height="{top + 2 * size + 10}" role="img">{"".join(parts)}</svg>'


# -- the drift report -------------------------------------------------------------------------------

FIGURE_NAMES = {
    "words_per_review": "Words per review (median)",
    "unknown_word_share": "Share of unknown words (mean per review)",
    "positive_share": "Share of positive verdicts",
    "uncertain_share": "Share of uncertain verdicts",
}


def render_drift_report(summary: dict[str, Any]) -> str:
    """A complete HTML page for a `sentiment.drift.drift_summary`: the verdicts, their rules, and plots."""
    figures = "".join(
        f'<tr class="{"drifted" if f["verdict"] == "drifted" else "within"}">'
        f"<th>{escape(FIGURE_NAMES[f['figure']])}</th>"
        f"<td><strong>{escape(f['verdict'])}</strong></td><td>{f['reference']:.4g}</td>"
        f"<td>{f['captured']:.4g}</td><td>{f['p_value']:.3g}</td><td>{f['difference']:.4g}</td>"
        f"<td>{escape(f['rule'])}</td></tr>"
        for f in summary["figures"]
    )
    capture = summary["capture"]
    about = "".join(
        f"<tr><th>{escape(name)}</th><td>{escape(str(value))}</td></tr>"
        for name, value in (
            ("Capture", summary["source"]),
            ("Model", summary["model"]),
            ("Card's figures from", f"{summary['reference']['source']} ({summary['reference']['reviews']:,} reviews)"),
            ("Files", capture["files"]),
            ("Records", capture["records"]),
            ("Reviews", capture["reviews"]),
            ("Answered with an error (no verdict)", capture["error_answers"]),
            ("Skipped as unreadable", capture["skipped"]),
            ("Rule for unreadable records", capture["skip_rule"]),
        )
    )
    skipped = "".join(f"<li>{escape(line)}</li>" for line in capture["skipped_records"])
    bins = summary["length_bins"]
    edges = [f"{edge:.0f}" for edge in bins["edges"]]
    bin_names = [
        f"<{edges[0]}",
        *(f"{low}-{high}" for low, high in itertools.pairwise(edges)),
        f"{edges[-1]}+",
    ]
    by_figure = {f["figure"]: f for f in summary["figures"]}
    shares = ("unknown_word_share", "positive_share", "uncertain_share")
    hours = capture["requests_per_hour"]
    plots = [
        _figure(
            "Words per review: share of reviews in each of the card's length bins",
            _bars(bin_names, {"card": bins["reference"], "captured": bins["captured"]}, "share of reviews"),
        ),
        _figure(
            "Shares: the card against the captured traffic",
            _bars(
                ["unknown words", "positive", "uncertain"],
                {
                    "card": [by_figure[name]["reference"] for name in shares],
                    "captured": [by_figure[name]["captured"] for name in shares],
                },
                "share",
            ),
        ),
        _figure(
            "Captured requests per hour",
            _bars([_hour(hour) for hour in hours], {"requests": list(hours.values())}, "requests (UTC)"),
        ),
    ]
    drifted = summary["drifted"]
    headline = (
        f"{len(drifted)} of {len(summary['figures'])} figures drifted: "
        + ", ".join(FIGURE_NAMES[name].lower() for name in drifted)
        if drifted
        else f"All {len(summary['figures'])} figures within range"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report: {escape(summary["source"])}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1180px; padding: 0 1rem; color: #1f2328; }}
table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; }}
th, td {{ text-align: left; padding: .25rem .8rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }}
td {{ font-variant-numeric: tabular-nums; }}
tr.drifted strong {{ color: #d1242f; }} tr.within strong {{ color: #1a7f37; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 1.5rem; }}
figure {{ margin: 0; }} figcaption {{ font-weight: 600; margin-bottom: .3rem; max-width: 480px; }}
</style></head><body>
<h1>Drift report</h1>
<p><strong>{escape(headline)}</strong>, against the model card's figures.</p>
<table><tr><th>figure</th><th>verdict</th><th>card</th><th>captured</th><th>p</th><th>difference</th><th>rule</th></tr>
{figures}</table>
<h2>Plots</h2><div class="plots">{"".join(plots)}</div>
<h2>What was read</h2><table>{about}</table>
{f"<h2>Skipped records</h2><ul>{skipped}</ul>" if skipped else ""}
</body></html>
"""


def _hour(hour: str) -> str:
    """ "2026-12-02T13" as "12-02 13h"; anything else (an "unknown" hour) as it is."""
    return f"{hour[5:10]} {hour[11:13]}h" if len(hour) == 13 and hour[10] == "T" else hour


def _bars(groups: Sequence[str], series: dict[str, Sequence[float]], y_label: str) -> str:
    """Grouped vertical bars: one group per name in `groups`, one bar per series in each, scaled to the largest."""
    width = max(WIDTH, 60 + 56 * len(groups))
    top_value = max((value for values in series.values() for value in values), default=0.0) or 1.0
    bottom, top = HEIGHT - MARGIN, MARGIN / 2
    slot = (width - 1.5 * MARGIN) / max(1, len(groups))
    bar = min(slot * 0.8 / max(1, len(series)), 40.0)
    parts = [
        f'<line x1="{MARGIN}" y1="{bottom}" x2="{width - MARGIN / 2}" y2="{bottom}" stroke="#57606a"/>',
        f'<line x1="{MARGIN}" y1="{top}" x2="{MARGIN}" y2="{bottom}" stroke="#57606a"/>',
        _text(12, HEIGHT / 2, y_label, transform=f"rotate(-90 12 {HEIGHT / 2})"),
        _text(MARGIN - 4, bottom + 4, "0", anchor="end", size=10),
        _text(MARGIN - 4, top + 4, f"{top_value:.3g}", anchor="end", size=10),
    ]
    for index, name in enumerate(groups):
        x = MARGIN + slot * index + slot * 0.1
        parts.append(_text(x + slot * 0.4, bottom + 14, name, size=9))
        for number, values in enumerate(series.values()):
            height = values[index] / top_value * (bottom - top)
            colour = COLOURS[number % len(COLOURS)]
            parts.append(
                f'<rect x="{x + bar * number:.1f}" y="{bottom - height:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{colour}"><title>{escape(name)}: {values[index]:.4g}</title></rect>'
            )
    for number, name in enumerate(series):
        parts.append(_text(width - MARGIN, top + 14 * (number + 1), name, anchor="end", size=11, fill=COLOURS[number]))
    return f'<svg width="{width}" height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" role="img">{"".join(parts)}</svg>'
