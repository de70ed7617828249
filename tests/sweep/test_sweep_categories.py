"""Category selection: the paper's lists, explicit lists, a folder's categories, bad selections."""

from pathlib import Path

import pytest

from transfusion_ad.reporting.results_table import AUTHORS_RESULTS
from transfusion_ad.sweep import CATEGORIES, SweepError, resolve_categories

ROOT = Path(__file__).resolve().parents[2]
# The shared method reference (CI) and the repository's own copy of it, docs/method.md.
SPECS = [ROOT.parent / "shared" / "spec" / "transfusion-method.md", ROOT / "docs" / "method.md"]


@pytest.mark.parametrize(("dataset", "count"), [("mvtec_ad", 15), ("visa", 12)])
def test_all_is_the_papers_category_list(dataset, count, tmp_path):
    chosen = resolve_categories("all", dataset, tmp_path / "absent")
    assert len(chosen) == count == len(set(chosen))
    assert chosen == sorted(chosen)
    # The same categories the authors published results for, so every row has a reference.
    assert set(chosen) == set(AUTHORS_RESULTS[dataset])


@pytest.mark.parametrize("spec", SPECS, ids=["shared_spec", "docs_method"])
def test_the_lists_match_the_spec(spec):
    if not spec.exists():
        pytest.skip(f"the method spec is not available at {spec}")
    text = spec.read_text()
    for start, dataset in (("* MVTec AD (15):", "mvtec_ad"), ("* VisA (12):", "visa")):
        item = text.split(start, 1)[1].split("\n*", 1)[0]  # the bullet, over its wrapped lines
        names = item.replace("pcb1–pcb4", "pcb1, pcb2, pcb3, pcb4")
        assert {name.strip(" .\n") for name in names.split(",")} == set(CATEGORIES[dataset])


def test_a_list_keeps_its_order_and_drops_repeats_and_blanks(tmp_path):
    assert resolve_categories(" pcb2,pcb1 ,,pcb2", "visa", tmp_path) == ["pcb2", "pcb1"]


def test_all_in_a_folder_lists_its_mvtec_layout_subfolders(tmp_path):
    for name in ("screws", "bracket"):
        (tmp_path / name / "train" / "good").mkdir(parents=True)
    (tmp_path / "textures").mkdir()  # not a category: no train/
    (tmp_path / "notes.txt").write_text("x")
    assert resolve_categories("all", "folder", tmp_path) == ["bracket", "screws"]


@pytest.mark.parametrize(
    ("selection", "dataset", "message"),
    [
        ("", "visa", "No category"),
        (" , ", "visa", "No category"),
        ("all,pcb1", "visa", "mixes 'all'"),
        ("all", "mvtec3d", "Unknown dataset 'mvtec3d'"),
    ],
)
def test_bad_selections_are_refused_with_the_reason(selection, dataset, message, tmp_path):
    with pytest.raises(SweepError, match=message):
        resolve_categories(selection, dataset, tmp_path)


def test_all_in_a_missing_or_empty_folder_names_it(tmp_path):
    with pytest.raises(SweepError, match="does not exist.*data_root"):
        resolve_categories("all", "folder", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SweepError, match=r"No category under .*empty"):
        resolve_categories("all", "folder", tmp_path / "empty")
