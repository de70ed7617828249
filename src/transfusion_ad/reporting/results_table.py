"""Cross-category results tables beside the authors' released results.

Why: a reproduction is only convincing next to the numbers it reproduces. Each row holds our
metric, the authors' value for the same category (their released checkpoints, spec §8.3) and the
difference, in percent. The mean row averages the categories we have (unweighted, like the
paper); the authors' mean is taken over the same categories, so partial runs compare fairly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

from transfusion_ad.core.metrics import METRIC_NAMES

AUTHORS_METRICS = ("image_auroc", "aupro", "pixel_auroc", "pixel_ap")
TABLE_METRICS = (*AUTHORS_METRICS, *(name for name in METRIC_NAMES if name not in AUTHORS_METRICS))

# Authors' released results in percent (README + results/*.csv, epoch 1500, w = 0.95, k = 7),
# per category: image AUROC, AUPRO@0.3, pixel AUROC, pixel AP (spec §8.3).
_AUTHORS_ROWS = {
    "mvtec_ad": {
        "bottle": (100.0, 97.8, 99.0, 91.7),
        "cable": (98.5, 92.7, 98.0, 77.9),
        "capsule": (99.4, 94.7, 98.0, 51.2),
        "carpet": (98.0, 92.3, 96.3, 74.0),
        "grid": (100.0, 98.5, 99.6, 68.5),
        "hazelnut": (100.0, 98.8, 99.6, 92.0),
        "leather": (100.0, 96.6, 99.1, 48.1),
        "metal_nut": (100.0, 95.8, 96.6, 82.3),
        "pill": (98.3, 97.9, 98.0, 77.4),
        "screw": (98.6, 96.8, 99.2, 63.6),
        "tile": (100.0, 98.8, 99.6, 97.0),
        "toothbrush": (100.0, 94.0, 98.1, 64.7),
        "transistor": (99.5, 83.2, 77.0, 43.0),
        "wood": (98.9, 94.8, 94.2, 74.4),
        "zipper": (100.0, 96.5, 98.9, 76.3),
    },
    "visa": {
        "candle": (98.2, 92.7, 98.6, 50.8),
        "capsules": (98.7, 99.4, 99.8, 81.9),
        "cashew": (92.8, 94.7, 96.5, 56.7),
        "chewinggum": (100.0, 91.4, 98.4, 23.5),
        "fryum": (98.7, 86.6, 99.0, 78.5),
        "macaroni1": (99.9, 97.9, 99.8, 46.5),
        "macaroni2": (98.4, 99.0, 99.8, 46.8),
        "pcb1": (100.0, 96.4, 99.0, 72.2),
        "pcb2": (99.1, 93.3, 99.0, 28.3),
        "pcb3": (98.9, 95.4, 97.9, 44.6),
        "pcb4": (99.8, 92.7, 98.1, 54.6),
        "pipe_fryum": (99.9, 96.6, 95.5, 57.9),
    },
}

AUTHORS_RESULTS: dict[str, dict[str, dict[str, float]]] = {
    dataset: {
        category: dict(zip(AUTHORS_METRICS, values, strict=True))
        for category, values in rows.items()
    }
    for dataset, rows in _AUTHORS_ROWS.items()
}

# The authors' own dataset means (README), in percent.
AUTHORS_MEANS: dict[str, dict[str, float]] = {
    "mvtec_ad": dict(zip(AUTHORS_METRICS, (99.4, 95.3, 96.8, 72.1), strict=True)),
    "visa": dict(zip(AUTHORS_METRICS, (98.7, 94.7, 98.4, 53.5), strict=True)),
}

Row = dict[str, str | int | float | None]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def comparison_rows(
    per_category: Mapping[str, Mapping[str, float]], dataset: str | None = None
) -> list[Row]:
    """One row per category plus a final "mean" row, values in percent.

    per_category: category -> metrics as returned by metrics.compute_all (fractions in [0, 1]);
    keys other than TABLE_METRICS are ignored. dataset: "mvtec_ad" or "visa" adds the columns
    "<metric>_authors" and "<metric>_diff" (ours minus authors, percentage points); None gives
    our numbers only. Categories come in the authors' order, unknown ones after, sorted.
    """
    if not per_category:
        raise ValueError("cannot build a results table: no category results were given")
    if dataset is not None and dataset not in AUTHORS_RESULTS:
        raise ValueError(
            f"no authors' results for dataset {dataset!r}; known: {sorted(AUTHORS_RESULTS)} "
            "(use dataset=None for a table of our numbers only)"
        )
    authors = AUTHORS_RESULTS[dataset] if dataset else {}
    categories = [name for name in authors if name in per_category]
    categories += sorted(name for name in per_category if name not in authors)
    rows: list[Row] = []
    for category in categories:
        row: Row = {"category": category}
        for metric in TABLE_METRICS:
            ours = per_category[category].get(metric)
            row[metric] = None if ours is None else 100.0 * float(ours)
            if dataset and metric in AUTHORS_METRICS:
                reference = authors.get(category, {}).get(metric)
                row[f"{metric}_authors"] = reference
                both = ours is not None and reference is not None
                row[f"{metric}_diff"] = row[metric] - reference if both else None
        rows.append(row)
    mean: Row = {"category": "mean"}
    for column in rows[0]:
        if column == "category" or column.endswith(("_authors", "_diff")):
            continue
        have = [row for row in rows if row[column] is not None]
        mean[column] = _mean([row[column] for row in have]) if have else None
        if dataset and column in AUTHORS_METRICS:
            references = [row[f"{column}_authors"] for row in have]
            complete = bool(have) and all(value is not None for value in references)
            mean[f"{column}_authors"] = _mean(references) if complete else None
            both = complete and mean[column] is not None
            mean[f"{column}_diff"] = mean[column] - mean[f"{column}_authors"] if both else None
    rows.append(mean)
    return rows


def rows_to_csv(rows: list[Row]) -> str:
    """CSV text of comparison_rows (empty cells where a value is missing, 4 decimals)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _format(value, "{:.4f}") for key, value in row.items()})
    return buffer.getvalue()


def rows_to_markdown(rows: list[Row]) -> str:
    """Markdown table of comparison_rows (one decimal, signed differences, mean in bold)."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [
            _format(row[column], "{:+.1f}" if column.endswith("_diff") else "{:.1f}")
            for column in columns
        ]
        if row["category"] == "mean":
            cells = [f"**{cell}**" if cell else cell for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _format(value: str | float | None, pattern: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int):  # counts, e.g. the number of seeds
        return str(value)
    return pattern.format(value)
