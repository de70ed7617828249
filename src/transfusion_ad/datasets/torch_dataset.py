"""Kedro dataset for tensors and checkpoints: torch.save, atomic writes, optional versions."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from kedro.io import AbstractVersionedDataset, DatasetError, Version


class TorchDataset(AbstractVersionedDataset[Any, Any]):
    """Save any object ``torch.save`` accepts (tensors, dicts of tensors, state dicts).

    The file is written to a temporary name beside the target and renamed, so an interrupted
    save never leaves a half-written artifact behind. Loads map to the CPU.

    Example catalog entry::

        model_checkpoint:
          type: transfusion_ad.datasets.TorchDataset
          filepath: data/06_models/model.pt
          versioned: true
    """

    def __init__(
        self,
        filepath: str,
        version: Version | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath=PurePosixPath(filepath), version=version, exists_function=_exists)
        self.metadata = metadata

    def load(self) -> Any:
        path = Path(self._get_load_path())
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except (RuntimeError, EOFError, OSError) as exc:
            raise DatasetError(
                f"Cannot read '{path}' ({exc}); the file is corrupt or was not written by this "
                "project. Delete it and re-run the pipeline that produces it."
            ) from exc

    def save(self, data: Any) -> None:
        path = Path(self._get_save_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        try:
            torch.save(data, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _exists(self) -> bool:
        try:
            path = self._get_load_path()
        except DatasetError:
            return False
        return Path(path).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version": self._version}


def _exists(path: str) -> bool:
    return Path(path).is_file()
