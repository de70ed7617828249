"""Project settings: configuration loading and the Kedro library components.

See https://docs.kedro.org/en/stable/configure/configuration_basics/ for the defaults.
"""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # `oc.env` lets mlflow.yml honour MLFLOW_TRACKING_URI for a tracking server.
    "custom_resolvers": {"oc.env": oc.env},
}
