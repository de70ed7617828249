"""TorchDataset: round trip, versions, atomic local writes, fsspec URLs, clear corrupt errors."""

from __future__ import annotations

import pytest
import torch
from kedro.io import DatasetError, Version

from transfusion_ad.datasets import TorchDataset


def test_round_trip_leaves_no_temporary(tmp_path):
    dataset = TorchDataset(str(tmp_path / "sub" / "x.pt"))
    assert not dataset.exists()
    dataset.save({"w": torch.arange(4)})
    assert dataset.exists()
    assert torch.equal(dataset.load()["w"], torch.arange(4))
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.pt"]


def test_versions_load_the_latest(tmp_path):
    for value, stamp in ((1, "2026-01-01T00.00.00.000Z"), (2, "2026-01-02T00.00.00.000Z")):
        TorchDataset(str(tmp_path / "m.pt"), version=Version(None, stamp)).save(torch.tensor(value))
    assert TorchDataset(str(tmp_path / "m.pt"), version=Version(None, None)).load().item() == 2
    pinned = TorchDataset(str(tmp_path / "m.pt"), version=Version("2026-01-01T00.00.00.000Z", None))
    assert pinned.load().item() == 1


def test_fsspec_url(tmp_path):
    dataset = TorchDataset(f"file://{tmp_path / 'remote' / 'y.pt'}")
    dataset.save(torch.ones(2))
    assert torch.equal(dataset.load(), torch.ones(2))
    memory = TorchDataset("memory://bucket/z.pt")
    memory.save(torch.zeros(3))
    assert torch.equal(memory.load(), torch.zeros(3))


def test_corrupt_file_is_named(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DatasetError, match="broken.pt"):
        TorchDataset(str(path)).load()
