"""Sweeps over categories: one Kedro ``train_eval`` run per category, scheduled by Ray.

Why: the paper's numbers need 15 MVTec AD and 12 VisA models at about a GPU-day each. The
categories are independent, so each is one Ray task (one Kedro session) placed on its own CPUs or
GPUs, on one machine or a cluster. Ray is optional (``pip install -e ".[distributed]"``); it is
imported only when a sweep runs.
"""

from transfusion_ad.sweep.categories import CATEGORIES, resolve_categories
from transfusion_ad.sweep.errors import SweepError
from transfusion_ad.sweep.params import parse_runtime_params
from transfusion_ad.sweep.project import KedroTarget
from transfusion_ad.sweep.runner import SweepConfig, run_sweep
from transfusion_ad.sweep.state import CategoryOutcome, SweepState
from transfusion_ad.sweep.task import CategoryResult, CategoryTask, run_category

__all__ = [
    "CATEGORIES",
    "CategoryOutcome",
    "CategoryResult",
    "CategoryTask",
    "KedroTarget",
    "SweepConfig",
    "SweepError",
    "SweepState",
    "parse_runtime_params",
    "resolve_categories",
    "run_category",
    "run_sweep",
]
