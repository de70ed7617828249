"""The Kedro project a sweep runs: sessions per category, the metrics and data root they use.

Why: the driver and every Ray worker must see the project exactly as ``kedro run`` would (same
environment, runtime parameters, catalog and MLflow configuration), so both go through a
``KedroSession`` built here rather than reading files by hand.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transfusion_ad.sweep.state import seed_suffix

PACKAGE = "transfusion_ad"
PIPELINE = "train_eval"
METRICS_DATASET = "metrics"  # catalog entry written last by the evaluation pipeline
INDEX_DATASET = "category_index"  # catalog entry whose ``root`` is the dataset's data root


@dataclass(frozen=True)
class KedroTarget:
    """The project, environment and runtime parameters shared by all categories of a sweep.

    ``params`` are the runtime parameters (``--params``), ``dataset`` included once known; the
    category is added per session.
    """

    project_path: Path
    env: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def runtime_params(
        self, category: str | None = None, seed: int | None = None
    ) -> dict[str, Any]:
        """The runtime parameters of one task's session (the defaults when ``None``); a seed also
        gets its own output folders (``run_suffix``)."""
        params = dict(self.params)
        if category is not None:
            params["category"] = category
        if seed is not None:
            params["seed"] = seed
            params["run_suffix"] = seed_suffix(seed)
        return params

    @contextmanager
    def session(self, category: str | None = None, seed: int | None = None) -> Iterator[Any]:
        """A ``KedroSession`` of the project for ``category`` (and ``seed``), closed on exit."""
        from kedro.framework.project import configure_project
        from kedro.framework.session import KedroSession

        configure_project(PACKAGE)
        with KedroSession.create(
            project_path=self.project_path,
            env=self.env,
            runtime_params=self.runtime_params(category, seed),
        ) as session:
            yield session

    def stored_metrics(self, category: str, seed: int | None = None) -> dict[str, Any] | None:
        """The task's latest metrics through the catalog, or None when it has none yet."""
        with self.session(category, seed) as session:
            catalog = session.load_context().catalog
            return catalog.load(METRICS_DATASET) if catalog.exists(METRICS_DATASET) else None


def dataset_and_root(target: KedroTarget) -> tuple[str, Path]:
    """(dataset, data root) as the project's configuration resolves them for ``target``."""
    with target.session() as session:
        context = session.load_context()
        dataset = context.params["dataset"]
        root = Path(context.config_loader["catalog"][INDEX_DATASET]["root"])
    return dataset, root if root.is_absolute() else target.project_path / root
