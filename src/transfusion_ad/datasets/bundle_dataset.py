"""Kedro dataset for model bundles: TorchDataset's storage, core.bundle's format check."""

from __future__ import annotations

from typing import Any

from kedro.io.core import get_filepath_str

from transfusion_ad.core.bundle import check_bundle
from transfusion_ad.datasets.torch_dataset import TorchDataset


class BundleDataset(TorchDataset):
    """A model bundle (core.bundle): checked before it is written, and checked (files from
    before bundles upgraded with a FutureWarning, other format versions refused) when read.

    Example catalog entry::

        model_checkpoint:
          type: transfusion_ad.datasets.BundleDataset
          filepath: data/06_models/model.pt
          versioned: true
    """

    def load(self) -> dict[str, Any]:
        source = get_filepath_str(self._get_load_path(), self._protocol)
        return check_bundle(super().load(), source=source)

    def save(self, data: dict[str, Any]) -> None:
        super().save(check_bundle(dict(data), source="the model bundle to save"))
