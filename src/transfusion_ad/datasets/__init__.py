"""Kedro datasets of the project (category manifests, model checkpoints, ...)."""

from transfusion_ad.datasets.category_index import CategoryIndexDataset

__all__ = ["CategoryIndexDataset"]
