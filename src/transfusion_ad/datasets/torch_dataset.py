"""Kedro dataset for tensors and checkpoints: torch.save, atomic writes, optional versions."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import torch
from kedro.io import AbstractVersionedDataset, DatasetError, Version
from kedro.io.core import get_filepath_str, get_protocol_and_path


class TorchDataset(AbstractVersionedDataset[Any, Any]):
    """Save tensors and plain containers of them (dicts, lists, strings, numbers, None), as
    tensors, state dicts and model payloads are. Loading uses ``weights_only=True``, so reading a
    file never runs pickled code; an object of another type is refused when it is read.

    ``filepath`` may be a local path or an fsspec URL (``s3://``, ``gs://``, ``file://`` ...)
    for shared storage. Local files are written to a temporary name beside the target and
    renamed, so an interrupted save never leaves a half-written artifact. Loads map to the CPU.

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
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        self._protocol = protocol
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )
        self.metadata = metadata

    def load(self) -> Any:
        path = get_filepath_str(self._get_load_path(), self._protocol)
        try:
            with self._fs.open(path, "rb") as handle:
                return torch.load(handle, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError) as exc:
            raise DatasetError(
                f"Cannot read '{path}' ({exc}); the file is corrupt or was not written by this "
                "project. Delete it and re-run the pipeline that produces it."
            ) from exc

    def save(self, data: Any) -> None:
        path = get_filepath_str(self._get_save_path(), self._protocol)
        if self._protocol != "file":
            with self._fs.open(path, "wb") as handle:
                torch.save(data, handle)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(handle)
        try:
            torch.save(data, tmp)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _exists(self) -> bool:
        try:
            path = self._get_load_path()
        except DatasetError:
            return False
        return self._fs.exists(get_filepath_str(path, self._protocol))

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "protocol": self._protocol,
            "version": self._version,
        }
