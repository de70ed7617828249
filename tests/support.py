"""Helpers shared by the tests (importable as ``support``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import yaml
from kedro.io import MemoryDataset

from transfusion_ad.conf_recipes import conf_recipe

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# The recipes as conf/ defines them: the paper's (conf/base) and the small CPU one (conf/quick).
PAPER_RECIPE = conf_recipe(PROJECT_ROOT)
SMALL_RECIPE = conf_recipe(PROJECT_ROOT, "quick")

# A recipe small enough for seconds on 2 cores that still has every mechanism of the method;
# pass as runtime params (`--env quick` plus these).
TINY_RUNTIME = {
    "image_size": 32,
    "model": {
        "base_width": 32,
        "channel_mults": [1, 2],
        "num_res_blocks": 1,
        "attention_levels": [1],
        "num_steps": 6,
    },
    # The paper's step schedule and t-sampling without a weight average, whatever conf/quick uses:
    # with it, raising epochs continues a run, which the resumption tests rely on.
    "training": {
        "epochs": 2,
        "progress": False,
        "lr_schedule": "step",
        "warmup_steps": 0,
        "ema_decay": None,
        "t_sampling": "uniform",
    },
    "evaluation": {"box_size": 3},
}


def _deep_update(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


def copy_project(target: Path) -> Path:
    """conf/, pyproject.toml and the shipped sample in ``target`` (data/ and mlflow.db stay
    out of the repository), plus a Kedro environment ``tiny``: quick shrunk to TINY_RUNTIME,
    for subprocess runs (`kedro run --env tiny`), since list values cannot pass --params."""
    shutil.copytree(PROJECT_ROOT / "conf", target / "conf", ignore=shutil.ignore_patterns("local"))
    (target / "conf" / "local").mkdir()
    tiny = target / "conf" / "tiny"
    shutil.copytree(target / "conf" / "quick", tiny)
    quick = yaml.safe_load((tiny / "parameters.yml").read_text())
    (tiny / "parameters.yml").write_text(yaml.safe_dump(_deep_update(quick, TINY_RUNTIME)))
    shutil.copy(PROJECT_ROOT / "pyproject.toml", target / "pyproject.toml")
    (target / "src").mkdir()  # the package itself is installed; Kedro only checks the folder
    sample = Path("data") / "01_raw" / "sample"
    shutil.copytree(PROJECT_ROOT / sample, target / sample)
    return target


def tracking_uri(project: Path) -> str:
    """A sqlite MLflow store inside the project copy."""
    return f"sqlite:///{project / 'mlflow.db'}"


class KeptMemoryDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so later stages and tests can read it."""

    def _release(self) -> None:
        return None


def start_in_own_group(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """A background run in its own process group (kill it with os.killpg), output discarded."""
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for_glob(folder: Path, pattern: str, process: subprocess.Popen, timeout: float) -> None:
    """Wait until ``folder`` holds a match of ``pattern``, failing if ``process`` ends first."""
    deadline = time.monotonic() + timeout
    while not list(folder.glob(pattern)):
        assert process.poll() is None, f"the run ended before {folder}/{pattern} appeared"
        assert time.monotonic() < deadline, f"{folder}/{pattern} did not appear within {timeout} s"
        time.sleep(0.05)


@contextmanager
def inside(folder: Path) -> Iterator[None]:
    """Run the block with ``folder`` as the working directory."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Wait until ``url`` answers 200, failing if ``process`` ends first."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"the server ended before {url} answered"
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer within {timeout} s"
        time.sleep(0.5)


def stop_group(process: subprocess.Popen) -> None:
    """Kill the process group a server was started in, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
