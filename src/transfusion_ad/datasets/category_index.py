"""Kedro dataset that loads one category of an anomaly-detection dataset as a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from transfusion_ad.data import index_category


class CategoryIndexDataset(AbstractDataset[None, pd.DataFrame]):
    """Read-only: ``load()`` returns ``index_category(root, category, layout)``.

    Example catalog entry::

        category_index:
          type: transfusion_ad.datasets.CategoryIndexDataset
          root: data/01_raw/mvtec_ad
          category: ${runtime_params:category, ${globals:default_category}}
          layout: auto
    """

    def __init__(
        self,
        root: str,
        category: str,
        layout: str = "auto",
        validate: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._root = Path(root)
        self._category = category
        self._layout = layout
        self._validate = validate
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        return index_category(self._root, self._category, self._layout, validate=self._validate)

    def save(self, data: pd.DataFrame) -> None:
        raise DatasetError(
            f"CategoryIndexDataset for '{self._root / self._category}' is read-only: it indexes "
            "images that already exist on disk."
        )

    def _describe(self) -> dict[str, Any]:
        return {
            "root": str(self._root),
            "category": self._category,
            "layout": self._layout,
            "validate": self._validate,
        }

    def _exists(self) -> bool:
        return (self._root / self._category).is_dir()
