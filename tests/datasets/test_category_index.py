"""The Kedro dataset and its catalog wiring: `--params category=...` selects the category."""

from __future__ import annotations

import pytest
from kedro.io import DatasetError

from transfusion_ad.datasets import CategoryIndexDataset


def test_loads_manifest(sample_root):
    dataset = CategoryIndexDataset(root=str(sample_root), category="fryum")
    assert dataset.exists()
    assert len(dataset.load()) == 95


def test_is_read_only(sample_root):
    dataset = CategoryIndexDataset(root=str(sample_root), category="fryum")
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save(dataset.load())


def test_catalog_resolves_runtime_params(project_root, sample_root):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_root)
    params = {"data_root": str(sample_root), "category": "fryum"}
    with KedroSession.create(project_path=project_root, runtime_params=params) as session:
        catalog = session.load_context().catalog
        assert len(catalog.load("category_index")) == 95
    with KedroSession.create(project_path=project_root) as session:
        description = session.load_context().catalog.get("category_index")._describe()
    assert description["root"] == "data/01_raw/mvtec_ad"
    assert description["category"] == "capsule"
