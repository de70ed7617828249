"""summary.csv / summary.md: the results table of the sweep, failures listed under it."""

import csv
import statistics

import pytest

from transfusion_ad.sweep.summary import protocols, seed_summary_rows, summary_rows, write_summary


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


def test_seeds_give_mean_and_sample_std_per_category_and_for_the_dataset(tmp_path):
    per_task = {
        "fryum/seed0": {**metrics(0.90, 0.80), "protocol": "paper"},
        "fryum/seed1": {**metrics(0.94, 0.82), "protocol": "paper"},
        "pcb1/seed0": {**metrics(0.98, 0.90), "protocol": "paper"},
        "pcb1/seed1": {**metrics(1.00, 0.94), "protocol": "paper"},
    }
    rows = seed_summary_rows(per_task, "visa")
    table = {row["category"]: row for row in rows}
    assert list(table) == ["fryum", "pcb1", "mean"]
    assert table["fryum"]["seeds"] == 2
    assert table["fryum"]["image_auroc"] == pytest.approx(92.0)
    assert table["fryum"]["image_auroc_std"] == pytest.approx(statistics.stdev([90.0, 94.0]))
    assert table["fryum"]["image_auroc_diff"] == pytest.approx(92.0 - 98.7)
    # The dataset row: mean and spread of the per-seed dataset means (94 and 97).
    assert table["mean"]["image_auroc"] == pytest.approx(95.5)
    assert table["mean"]["image_auroc_std"] == pytest.approx(statistics.stdev([94.0, 97.0]))
    assert table["mean"]["image_auroc_authors"] == pytest.approx((98.7 + 100.0) / 2)
    csv_path, md_path = write_summary(rows, "visa", {}, tmp_path, protocols(per_task.values()))
    header = csv_path.read_text().splitlines()[0].split(",")
    assert {"seeds", "image_auroc", "image_auroc_std", "image_auroc_authors"} <= set(header)
    text = md_path.read_text()
    assert "mean ± sample std over the seeds" in text and "Protocol: paper" in text
    assert "| fryum | 2 | 92.0 ± 2.8 |" in text


def test_one_seed_has_no_spread():
    rows = seed_summary_rows({"bracket/seed3": metrics(0.9, 0.7)}, "folder")
    assert rows[0]["image_auroc"] == pytest.approx(90.0) and rows[0]["image_auroc_std"] is None
    assert "image_auroc_authors" not in rows[0]
