"""predict: a folder of new images -> versioned scores.csv, heat-map overlays and binary masks,
with the category's trained model and its calibrated thresholds."""

from kedro.pipeline import Node, Pipeline

from transfusion_ad.pipelines.predict.nodes import (
    list_input_images,
    render_predictions,
    score_images,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                list_input_images,
                inputs="params:input_dir",
                outputs="images_to_score",
                name="list_images_to_score",
            ),
            Node(
                score_images,
                inputs=[
                    "model_checkpoint",
                    "thresholds",
                    "params:thresholds",
                    "images_to_score",
                    "params:inference",
                    "params:evaluation",
                    "params:image_size",
                    "params:model",
                    "params:device",
                ],
                outputs="scored_images",
                name="score_new_images",
            ),
            Node(
                render_predictions,
                inputs=["scored_images", "params:heatmap"],
                outputs="predictions",
                name="write_prediction_outputs",
            ),
        ]
    )
