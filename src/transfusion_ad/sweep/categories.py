"""Which categories a sweep runs: the paper's lists, a comma-separated choice, or a folder's."""

from __future__ import annotations

from pathlib import Path

from transfusion_ad.sweep.errors import SweepError
from transfusion_ad.validation import DATASETS

# The benchmark categories (spec §1.1), sorted as the authors' `--category all` loop runs them.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "mvtec_ad": (
        "bottle",
        "cable",
        "capsule",
        "carpet",
        "grid",
        "hazelnut",
        "leather",
        "metal_nut",
        "pill",
        "screw",
        "tile",
        "toothbrush",
        "transistor",
        "wood",
        "zipper",
    ),
    "visa": (
        "candle",
        "capsules",
        "cashew",
        "chewinggum",
        "fryum",
        "macaroni1",
        "macaroni2",
        "pcb1",
        "pcb2",
        "pcb3",
        "pcb4",
        "pipe_fryum",
    ),
}
ALL = "all"


def resolve_categories(selection: str, dataset: str, data_root: Path) -> list[str]:
    """The categories named by ``selection``: ``all`` or ``a,b,c`` (order kept, repeats dropped).

    ``all`` is the paper's list for mvtec_ad and visa; for ``folder`` it is every subfolder of
    ``data_root`` in MVTec layout (one holding ``train/``), sorted.
    """
    if dataset not in DATASETS:
        raise SweepError(f"Unknown dataset {dataset!r}. Use one of: {', '.join(DATASETS)}.")
    names = [name.strip() for name in selection.split(",") if name.strip()]
    if not names:
        raise SweepError(
            f"No category in --categories {selection!r}. Give 'all' or a comma-separated list."
        )
    if ALL in names:
        if len(names) > 1:
            raise SweepError(
                f"--categories {selection!r} mixes 'all' with names. Give 'all' alone or a list."
            )
        return _all_categories(dataset, data_root)
    return list(dict.fromkeys(names))


def _all_categories(dataset: str, data_root: Path) -> list[str]:
    if dataset in CATEGORIES:
        return list(CATEGORIES[dataset])
    if not data_root.is_dir():
        raise SweepError(
            f"Data root '{data_root}' does not exist, so 'all' folder categories cannot be "
            "listed. Point it at your MVTec-layout folder with --params data_root=/path."
        )
    found = sorted(p.name for p in data_root.iterdir() if (p / "train").is_dir())
    if not found:
        raise SweepError(
            f"No category under '{data_root}': a category is a subfolder holding 'train/good' "
            "(MVTec layout). Check --params data_root=..."
        )
    return found
