"""train_eval = data_ingestion + anomaly_synthesis + training + inference + evaluation.

A folder of its own so that Kedro, which only discovers the pipelines named on the command
line, finds it for `kedro run --pipelines=train_eval`.
"""

from kedro.pipeline import Pipeline

from transfusion_ad.pipelines import (
    anomaly_synthesis,
    data_ingestion,
    evaluation,
    inference,
    training,
)

STAGES = (data_ingestion, anomaly_synthesis, training, inference, evaluation)


def create_pipeline(**kwargs) -> Pipeline:
    return sum((stage.create_pipeline() for stage in STAGES), Pipeline([]))
