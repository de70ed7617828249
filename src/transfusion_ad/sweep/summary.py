"""The sweep's cross-category table: ours, the authors' and the difference, with the mean row."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transfusion_ad.core.results_table import (
    AUTHORS_RESULTS,
    Row,
    comparison_rows,
    rows_to_csv,
    rows_to_markdown,
)

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"


def summary_rows(per_category: Mapping[str, Mapping[str, Any]], dataset: str) -> list[Row]:
    """comparison_rows with the authors' columns where they published the dataset."""
    return comparison_rows(per_category, dataset if dataset in AUTHORS_RESULTS else None)


def write_summary(
    rows: list[Row], dataset: str, failed: Mapping[str, str], output_dir: Path
) -> tuple[Path, Path]:
    """Write summary.csv and summary.md (the table, then the failed categories with their error)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = output_dir / SUMMARY_CSV, output_dir / SUMMARY_MD
    csv_path.write_text(rows_to_csv(rows))
    lines = [f"# {dataset}: {len(rows) - 1} categories (metrics in %)", "", rows_to_markdown(rows)]
    if failed:
        lines += ["Failed (no metrics):", ""]
        lines += [f"- {category}: {error}" for category, error in failed.items()]
        lines.append("")
    md_path.write_text("\n".join(lines))
    return csv_path, md_path
