"""The evaluation report a person opens: one self-contained HTML file with inline SVG plots.

Training curves, confusion matrix, ROC curve and calibration diagram, drawn as plain SVG (no plotting
library, no scripts, nothing fetched). Every piece of text is escaped.
"""

from __future__ import annotations

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
