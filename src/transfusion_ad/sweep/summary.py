"""The sweep's cross-category table: ours, the authors' and the difference, with the mean row;
with seeds, mean ± std over the seeds per category and for the dataset."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from transfusion_ad.reporting.results_table import (
    AUTHORS_METRICS,
    AUTHORS_RESULTS,
    TABLE_METRICS,
    Row,
    comparison_rows,
    rows_to_csv,
    rows_to_markdown,
)
from transfusion_ad.sweep.state import parse_task_name

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
SUMMARIES_DIR = "summaries"  # <output dir>/summaries/<sweep id>/: one folder per sweep
STD_SUFFIX = "_std"


def summary_rows(per_category: Mapping[str, Mapping[str, Any]], dataset: str) -> list[Row]:
    """comparison_rows with the authors' columns where they published the dataset."""
    return comparison_rows(per_category, dataset if dataset in AUTHORS_RESULTS else None)


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n − 1); the std is None for fewer than 2 values."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def seed_summary_rows(per_task: Mapping[str, Mapping[str, Any]], dataset: str) -> list[Row]:
    """One row per category and a final "mean" row, values in percent: each metric's mean over
    the seeds, ``<metric>_std`` (sample std over the seeds), ``seeds`` (how many), and for a
    published dataset ``<metric>_authors`` and ``<metric>_diff`` (our mean minus theirs).

    per_task: ``<category>/seed<N>`` -> metrics (fractions). The dataset row's mean and std are
    over the seeds' dataset means (each the unweighted mean over the categories with that seed),
    so its std is the seed-to-seed spread of the dataset number, not of the categories.
    """
    if not per_task:
        raise ValueError("cannot build a results table: no task results were given")
    by_category: dict[str, dict[int | None, Mapping[str, Any]]] = {}
    for name, metrics in per_task.items():
        category, seed = parse_task_name(name)
        by_category.setdefault(category, {})[seed] = metrics
    authors = AUTHORS_RESULTS.get(dataset, {})
    order = [name for name in authors if name in by_category]
    order += sorted(name for name in by_category if name not in authors)
    rows = [
        _seed_row(
            category, by_category[category], authors.get(category), dataset in AUTHORS_RESULTS
        )
        for category in order
    ]
    seeds = sorted({seed for runs in by_category.values() for seed in runs}, key=str)
    mean: Row = {"category": "mean", "seeds": len(seeds)}
    for metric in TABLE_METRICS:
        dataset_means = []
        for seed in seeds:
            values = [
                100.0 * float(runs[seed][metric])
                for runs in by_category.values()
                if seed in runs and runs[seed].get(metric) is not None
            ]
            if values:
                dataset_means.append(statistics.fmean(values))
        mean[metric], mean[f"{metric}{STD_SUFFIX}"] = _mean_std(dataset_means)
        if dataset in AUTHORS_RESULTS and metric in AUTHORS_METRICS:
            references = [authors.get(category, {}).get(metric) for category in order]
            complete = bool(references) and None not in references and mean[metric] is not None
            mean[f"{metric}_authors"] = statistics.fmean(references) if complete else None
            mean[f"{metric}_diff"] = mean[metric] - mean[f"{metric}_authors"] if complete else None
    rows.append(mean)
    return rows


def _seed_row(
    category: str,
    runs: Mapping[int | None, Mapping[str, Any]],
    reference: Mapping[str, float] | None,
    published: bool,
) -> Row:
    row: Row = {"category": category, "seeds": len(runs)}
    for metric in TABLE_METRICS:
        values = [100.0 * float(m[metric]) for m in runs.values() if m.get(metric) is not None]
        row[metric], row[f"{metric}{STD_SUFFIX}"] = _mean_std(values)
        if published and metric in AUTHORS_METRICS:
            theirs = (reference or {}).get(metric)
            row[f"{metric}_authors"] = theirs
            both = theirs is not None and row[metric] is not None
            row[f"{metric}_diff"] = row[metric] - theirs if both else None
    return row


def _with_spread(rows: list[Row]) -> list[Row]:
    """The rows for Markdown: "mean ± std" in one cell, the std columns folded in."""
    folded = []
    for row in rows:
        cells: Row = {}
        for column, value in row.items():
            if column.endswith(STD_SUFFIX):
                continue
            spread = row.get(f"{column}{STD_SUFFIX}")
            if isinstance(value, float) and spread is not None:
                cells[column] = f"{value:.1f} ± {spread:.1f}"
            elif column == "seeds":
                cells[column] = str(value)
            else:
                cells[column] = value
        folded.append(cells)
    return folded


def protocols(metrics: Iterable[Mapping[str, Any]]) -> list[str]:
    """The protocols (core.protocol) that made these metrics, sorted; ``default`` for metrics
    written before the protocol was recorded."""
    return sorted({m.get("protocol", "default") for m in metrics})


def write_summary(
    rows: list[Row],
    dataset: str,
    failed: Mapping[str, str],
    output_dir: Path,
    protocol_names: Iterable[str] = ("default",),
) -> tuple[Path, Path]:
    """Write summary.csv and summary.md in ``output_dir`` (the table, the protocol that made its
    numbers, then the failed tasks with their error)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = output_dir / SUMMARY_CSV, output_dir / SUMMARY_MD
    csv_path.write_text(rows_to_csv(rows))
    seeded = "seeds" in rows[0]
    heading = f"# {dataset}: {len(rows) - 1} categories (metrics in %"
    heading += ", mean ± sample std over the seeds)" if seeded else ")"
    lines = [
        heading,
        "",
        f"Protocol: {', '.join(protocol_names)} (README, 'The authors' protocol').",
        "",
        rows_to_markdown(_with_spread(rows) if seeded else rows),
    ]
    if failed:
        lines += ["Failed (no metrics):", ""]
        lines += [f"- {name}: {error}" for name, error in failed.items()]
        lines.append("")
    md_path.write_text("\n".join(lines))
    return csv_path, md_path
