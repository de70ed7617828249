"""The state of the last sweep of a dataset, on disk, so ``--only-failed`` knows what to re-run.

Why a file: a sweep over 15 GPU-days outlives any one process. The state is written after every
finished task (atomically), so even an interrupted sweep leaves an accurate record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SUCCEEDED, FAILED, SKIPPED, PENDING = "succeeded", "failed", "skipped", "pending"
DONE = (SUCCEEDED, SKIPPED)
STATE_FILE = "sweep_state.json"
_SEED_MARK = "/seed"


def seed_suffix(seed: int) -> str:
    """The ``run_suffix`` runtime parameter of a seed's task: its outputs go to
    ``<dataset>/<category>/seed<N>/`` (conf/base/catalog.yml), beside the other seeds'."""
    return f"{_SEED_MARK}{seed}"


def task_name(category: str, seed: int | None) -> str:
    """How a sweep names one task: the category, with ``/seed<N>`` when it has a seed axis."""
    return category if seed is None else f"{category}{seed_suffix(seed)}"


def parse_task_name(name: str) -> tuple[str, int | None]:
    """(category, seed or None) of a task name written by ``task_name``."""
    category, mark, seed = name.rpartition(_SEED_MARK)
    if mark and category and seed.isdigit():
        return category, int(seed)
    return name, None


@dataclass
class CategoryOutcome:
    """One category's last outcome: succeeded, failed (with the error), skipped (done before) or
    pending (submitted, not finished: the sweep was interrupted)."""

    status: str
    error: str | None = None
    seconds: float | None = None
    run_id: str | None = None


@dataclass
class SweepState:
    """What a sweep ran, with which settings, and how each task ended.

    A task is a category, or a (category, seed) pair named ``<category>/seed<N>`` when the sweep
    has seeds. ``summary_dir`` is the folder of this sweep's own summary files.
    """

    sweep_id: str
    dataset: str
    env: str | None
    params: dict[str, Any]
    parent_run_id: str | None = None
    outcomes: dict[str, CategoryOutcome] = field(default_factory=dict)
    seeds: list[int] | None = None
    summary_dir: str | None = None

    def categories(self, status: str) -> list[str]:
        """The tasks whose last outcome is ``status``, in sweep order."""
        return [name for name, outcome in self.outcomes.items() if outcome.status == status]

    def unfinished(self) -> list[str]:
        """The tasks ``--only-failed`` re-runs: failed, or pending when the sweep stopped."""
        return [name for name, outcome in self.outcomes.items() if outcome.status not in DONE]

    def report(self) -> str:
        """A plain-text account: each status with its categories, each failure with its error."""
        lines = [f"Sweep {self.sweep_id} of {self.dataset}:"]
        for status in (SUCCEEDED, SKIPPED, FAILED, PENDING):
            names = self.categories(status)
            if names:
                lines.append(f"  {status} ({len(names)}): {', '.join(names)}")
            if status == FAILED:
                lines += [f"    {name}: {self.outcomes[name].error}" for name in names]
        if self.summary_dir:
            lines.append(f"  summary: {self.summary_dir}")
        return "\n".join(lines)

    def save(self, path: Path) -> None:
        """Write as JSON via a temporary file and a rename, so a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> SweepState | None:
        """The state saved at ``path``, or None when no sweep has run there."""
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        outcomes = {name: CategoryOutcome(**value) for name, value in data.pop("outcomes").items()}
        return cls(**data, outcomes=outcomes)
