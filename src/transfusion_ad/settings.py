"""Project settings: configuration loading and the Kedro library components.

See https://docs.kedro.org/en/stable/configure/configuration_basics/ for the defaults.
"""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from transfusion_ad.hooks import (
    CpuSettingsHook,
    MlflowArtifactHook,
    ModelThresholdsPairHook,
    ParameterValidationHook,
)

HOOKS = (
    ParameterValidationHook(),
    CpuSettingsHook(),
    ModelThresholdsPairHook(),
    MlflowArtifactHook(),
)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # `oc.env` lets mlflow.yml honour MLFLOW_TRACKING_URI for a tracking server.
    "custom_resolvers": {"oc.env": oc.env},
    # Environments (conf/quick) override single keys of a parameter group, not the whole group.
    "merge_strategy": {"parameters": "soft", "globals": "soft"},
}
