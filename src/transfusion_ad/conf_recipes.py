"""The recipes as conf/ defines them, for code that works inside the project (tests, benchmarks,
notebooks) without a Kedro session: conf/ is their one source.

Why not constants in the library: a recipe written twice drifts. The paper's recipe is
conf/base, the small CPU one conf/quick (only its differences); this reads them the way
``kedro run --env <env> --params ...`` would.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader

from transfusion_ad.core.identity import to_plain
from transfusion_ad.settings import CONFIG_LOADER_ARGS


def project_parameters(
    project_path: str | Path,
    env: str | None = None,
    runtime_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The parameters of ``kedro run [--env env] [--params ...]`` in ``project_path`` (nested
    ``runtime_params``, e.g. ``{"model": {"base_width": 32}}``); env None is conf/base alone."""
    args = {key: value for key, value in CONFIG_LOADER_ARGS.items() if key != "default_run_env"}
    loader = OmegaConfigLoader(
        conf_source=str(Path(project_path) / "conf"),
        env=env or args["base_env"],
        runtime_params=dict(runtime_params or {}),
        **args,
    )
    return loader["parameters"]


def conf_recipe(
    project_path: str | Path,
    env: str | None = None,
    runtime_params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The recipe a checkpoint records for these parameters: ``image_size`` and the model keys
    (``num_steps``, ``base_width``, ``channel_mults``, ...), lists as lists."""
    parameters = project_parameters(project_path, env, runtime_params)
    return {"image_size": parameters["image_size"], **to_plain(parameters["model"])}
