"""Results tables: authors' numbers transcribed faithfully, ours beside them, fair means."""

import csv
import io
import re
from pathlib import Path

import pytest

from transfusion_ad.reporting.results_table import (
    AUTHORS_MEANS,
    AUTHORS_METRICS,
    AUTHORS_RESULTS,
    TABLE_METRICS,
    comparison_rows,
    rows_to_csv,
    rows_to_markdown,
)

ROOT = Path(__file__).resolve().parents[2]
# The shared method reference (CI) and the repository's own copy of it, docs/method.md.
SPECS = [ROOT.parent / "shared" / "spec" / "transfusion-method.md", ROOT / "docs" / "method.md"]


def spec_table(spec, title):
    """category -> four values, read from the spec's markdown table under `title`."""
    text = spec.read_text().split(title, 1)[1].split("\n\n", 2)[1]
    table = {}
    for line in text.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if not cells[0].startswith("**"):
            table[cells[0]] = tuple(float(cell) for cell in cells[1:])
    return table


@pytest.mark.parametrize("spec", SPECS, ids=["shared_spec", "docs_method"])
@pytest.mark.parametrize(
    ("dataset", "title"),
    [("mvtec_ad", "MVTec AD (one model per category)"), ("visa", "VisA (one model per category)")],
)
def test_authors_results_match_the_spec(spec, dataset, title):
    if not spec.exists():
        pytest.skip(f"the method spec is not available at {spec}")
    expected = spec_table(spec, title)
    assert len(expected) >= 12
    ours = {
        category: tuple(values[metric] for metric in AUTHORS_METRICS)
        for category, values in AUTHORS_RESULTS[dataset].items()
    }
    assert ours == expected


@pytest.mark.parametrize("dataset", ["mvtec_ad", "visa"])
def test_authors_category_values_average_to_their_published_means(dataset):
    for metric in AUTHORS_METRICS:
        values = [row[metric] for row in AUTHORS_RESULTS[dataset].values()]
        # Per-category values and means are each rounded to 0.1.
        assert sum(values) / len(values) == pytest.approx(AUTHORS_MEANS[dataset][metric], abs=0.1)


def ours(image_auroc, aupro, **extra):
    return {"image_auroc": image_auroc, "aupro": aupro, "optimistic": 0.5, **extra}


def test_rows_put_ours_beside_the_authors_and_average_the_same_categories():
    results = {"screw": ours(0.95, 0.90), "bottle": ours(0.99, 0.97, pixel_ap=0.8)}
    rows = comparison_rows(results, "mvtec_ad")
    assert [row["category"] for row in rows] == ["bottle", "screw", "mean"]
    bottle, screw, mean = rows
    assert bottle["image_auroc"] == pytest.approx(99.0)
    assert bottle["image_auroc_authors"] == 100.0
    assert bottle["image_auroc_diff"] == pytest.approx(-1.0)
    assert screw["aupro_diff"] == pytest.approx(90.0 - 96.8)
    assert screw["pixel_ap"] is None and screw["pixel_ap_diff"] is None
    assert screw["pixel_ap_authors"] == 63.6
    assert "optimistic" not in bottle
    # Means over the two categories we have, the authors' over the same two.
    assert mean["image_auroc"] == pytest.approx(97.0)
    assert mean["image_auroc_authors"] == pytest.approx((100.0 + 98.6) / 2)
    assert mean["image_auroc_diff"] == pytest.approx(97.0 - 99.3)
    # Only bottle has pixel AP: its mean and the authors' are bottle's.
    assert mean["pixel_ap"] == pytest.approx(80.0)
    assert mean["pixel_ap_authors"] == 91.7
    assert mean["pixel_auroc"] is None and mean["pixel_auroc_authors"] is None


def test_unknown_categories_and_no_dataset():
    results = {"my_part": ours(0.8, 0.7), "fryum": ours(0.9, 0.8)}
    rows = comparison_rows(results, "visa")
    assert [row["category"] for row in rows] == ["fryum", "my_part", "mean"]
    assert rows[1]["image_auroc_authors"] is None and rows[1]["image_auroc_diff"] is None
    # The authors' mean would cover fewer categories than ours: left blank, no difference.
    assert rows[2]["image_auroc"] == pytest.approx(85.0)
    assert rows[2]["image_auroc_authors"] is None and rows[2]["image_auroc_diff"] is None
    plain = comparison_rows(results)
    assert list(plain[0]) == ["category", *TABLE_METRICS]
    assert [row["category"] for row in plain] == ["fryum", "my_part", "mean"]


def test_csv_and_markdown():
    rows = comparison_rows({"bottle": ours(0.993, 0.95), "capsule": ours(0.981, 0.93)}, "mvtec_ad")
    parsed = list(csv.DictReader(io.StringIO(rows_to_csv(rows))))
    assert [row["category"] for row in parsed] == ["bottle", "capsule", "mean"]
    assert float(parsed[0]["image_auroc_diff"]) == pytest.approx(-0.7, abs=1e-4)
    assert parsed[1]["pixel_ap"] == ""
    assert float(parsed[2]["aupro_authors"]) == pytest.approx((97.8 + 94.7) / 2, abs=1e-4)
    lines = rows_to_markdown(rows).splitlines()
    assert lines[0].startswith(
        "| category | image_auroc | image_auroc_authors | image_auroc_diff |"
    )
    assert len(lines) == 2 + len(rows)
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    assert "| bottle | 99.3 | 100.0 | -0.7 |" in lines[2]
    assert re.search(
        r"\| \*\*mean\*\* \| \*\*98\.7\*\* \| \*\*99\.7\*\* \| \*\*-1\.0\*\* \|", lines[4]
    )


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="no authors' results for dataset 'mvtec3d'.*'visa'"):
        comparison_rows({"bottle": ours(0.9, 0.9)}, "mvtec3d")
    with pytest.raises(ValueError, match="no category results"):
        comparison_rows({}, "visa")
