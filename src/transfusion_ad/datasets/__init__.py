"""Kedro datasets of the project (category manifests, tensors and model bundles)."""

from transfusion_ad.datasets.bundle_dataset import BundleDataset
from transfusion_ad.datasets.category_index import CategoryIndexDataset
from transfusion_ad.datasets.torch_dataset import TorchDataset

__all__ = ["BundleDataset", "CategoryIndexDataset", "TorchDataset"]
