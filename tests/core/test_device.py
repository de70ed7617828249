import subprocess
import sys

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


_PAGE_FAULTS_SCRIPT = """
import resource, sys, torch
from transfusion_ad.core.device import keep_freed_host_memory

def faults_of_alloc_free_cycles(cycles=5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(cycles):
        torch.empty(16 * 2**20).fill_(1.0)  # 64 MiB written, then freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

default = faults_of_alloc_free_cycles()
kept = keep_freed_host_memory()
faults_of_alloc_free_cycles(10)  # the heap grows to hold the block
print(kept, default, faults_of_alloc_free_cycles())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keeping_freed_host_memory_stops_page_faults_on_reallocation():
    """A fresh process: the setting is process-wide and lasts until exit."""
    result = subprocess.run(
        [sys.executable, "-c", _PAGE_FAULTS_SCRIPT], capture_output=True, text=True, check=True
    )
    kept, default, after = result.stdout.split()
    assert kept == "True"
    assert int(default) > 5 * 16_000  # every cycle faults in its 64 MiB again (4 KiB pages)
    assert int(after) < int(default) / 20
