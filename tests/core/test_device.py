import pytest
import torch

from transfusion_ad.core.device import resolve_device


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "", "tpu", "cpu:0:1"])
def test_bad_name_is_rejected_with_the_value_and_choices(name):
    with pytest.raises(ValueError, match="allowed") as info:
        resolve_device(name)
    assert repr(name) in str(info.value)


def test_non_string_is_rejected():
    with pytest.raises(ValueError, match="string"):
        resolve_device(0)


def test_cpu_names_are_normalised():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


def _fake_accelerators(monkeypatch, cuda: bool, mps: bool, count: int = 1) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if cuda else 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _fake_accelerators(monkeypatch, cuda, mps)
    assert resolve_device("auto").type == expected
    assert resolve_device().type == expected


def test_explicit_accelerator_that_is_missing_is_an_error(monkeypatch):
    _fake_accelerators(monkeypatch, cuda=False, mps=False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="MPS is not available"):
        resolve_device("mps")


def test_cuda_index_is_checked(monkeypatch):
    _fake_accelerators(monkeypatch, cuda=True, mps=False, count=2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match="2 CUDA device"):
        resolve_device("cuda:2")
