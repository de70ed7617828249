"""calibrate: good images from the line -> scores -> thresholds (new version, bound to the
model) and the deployable model bundle with them."""

from kedro.pipeline import Node, Pipeline

from transfusion_ad.core.bundle import with_thresholds
from transfusion_ad.pipelines.calibrate.nodes import (
    score_good_images,
    thresholds_for_false_reject_rate,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                score_good_images,
                inputs=[
                    "model_checkpoint",
                    "params:good_dir",
                    "params:inference",
                    "params:evaluation",
                    "params:image_size",
                    "params:model",
                    "params:device",
                ],
                outputs="good_maps",
                name="score_good_images",
            ),
            Node(
                thresholds_for_false_reject_rate,
                inputs=[
                    "good_maps",
                    "model_checkpoint",
                    "params:false_reject_rate",
                    "params:inference",
                    "params:evaluation",
                ],
                outputs="thresholds",
                name="thresholds_for_false_reject_rate",
            ),
            Node(
                with_thresholds,
                inputs=["model_checkpoint", "thresholds"],
                outputs="model_bundle",
                name="bundle_model_with_line_thresholds",
            ),
        ]
    )
