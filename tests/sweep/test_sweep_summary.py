"""summary.csv / summary.md: the results table of the sweep, failures listed under it."""

import csv

import pytest

from transfusion_ad.sweep.summary import summary_rows, write_summary


def metrics(image_auroc, aupro):
    return {"image_auroc": image_auroc, "aupro": aupro, "thresholds": {"image": 0.5}}


def test_benchmark_datasets_get_the_authors_columns(tmp_path):
    rows = summary_rows({"pcb1": metrics(0.99, 0.9), "fryum": metrics(0.97, 0.8)}, "visa")
    csv_path, md_path = write_summary(rows, "visa", {"pcb2": "OOM"}, tmp_path)
    table = {row["category"]: row for row in csv.DictReader(csv_path.open())}
    assert list(table) == ["fryum", "pcb1", "mean"]
    assert float(table["pcb1"]["image_auroc_authors"]) == 100.0
    assert float(table["fryum"]["image_auroc_diff"]) == pytest.approx(97.0 - 98.7)
    assert float(table["mean"]["aupro"]) == pytest.approx(85.0)
    text = md_path.read_text()
    assert "# visa: 2 categories" in text
    assert "| fryum |" in text and "| **mean** |" in text
    assert "- pcb2: OOM" in text


def test_a_folder_dataset_has_our_numbers_only(tmp_path):
    rows = summary_rows({"bracket": metrics(0.9, 0.7)}, "folder")
    csv_path, md_path = write_summary(rows, "folder", {}, tmp_path)
    header = csv_path.read_text().splitlines()[0]
    assert "authors" not in header and "image_auroc" in header
    assert "Failed" not in md_path.read_text()
