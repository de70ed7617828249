"""Kedro datasets of the project (category manifests, tensors and model checkpoints)."""

from transfusion_ad.datasets.category_index import CategoryIndexDataset
from transfusion_ad.datasets.torch_dataset import TorchDataset

__all__ = ["CategoryIndexDataset", "TorchDataset"]
