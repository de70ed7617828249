"""The per-category Markdown report: metrics, thresholds, figures and the recipe."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _table(rows: Iterable[tuple[str, Any]], header: tuple[str, str]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    for key, value in rows:
        shown = f"{value:.4f}" if isinstance(value, float) else f"`{value}`"
        lines.append(f"| {key} | {shown} |")
    return lines


def category_report(
    dataset: str,
    category: str,
    metrics: dict[str, Any],
    recipe: dict[str, Any],
    figures: Iterable[str],
) -> str:
    """Markdown linking the figures saved beside it under figures/<name>.png."""
    scalar = [(k, v) for k, v in metrics.items() if isinstance(v, float)]
    thresholds = metrics.get("thresholds", {})
    lines = [
        f"# TransFusion AD report: {dataset} / {category}",
        "",
        "## Metrics (test set)",
        "",
        *_table(scalar, ("metric", "value")),
        "",
        "## Thresholds",
        "",
        "Calibrated on held-out normal training images only (no test data). The test-set",
        "F1-optimal threshold is optimistic: it was chosen on the data it is scored on.",
        "",
        *_table(sorted(thresholds.items()), ("threshold", "value")),
        "",
        "## Figures",
        "",
        *[f"![{name}](figures/{name}.png)" for name in figures],
        "",
        "## Recipe",
        "",
        *_table(sorted(recipe.items()), ("parameter", "value")),
        "",
    ]
    return "\n".join(lines)
