"""anomaly_synthesis: foreground masks, texture bank, synthetic-anomaly preview."""

from kedro.pipeline import Node, Pipeline

from transfusion_ad.pipelines.anomaly_synthesis.nodes import (
    build_texture_bank,
    estimate_foreground,
    preview_synthetic_anomalies,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                estimate_foreground,
                inputs=[
                    "train_set",
                    "params:category",
                    "params:synthesis",
                    "params:image_size",
                    "params:dataset",
                ],
                outputs="foreground_masks",
                name="estimate_foreground_masks",
            ),
            Node(
                build_texture_bank,
                inputs=["params:synthesis", "params:image_size", "params:seed", "params:protocol"],
                outputs="texture_bank",
                name="build_texture_bank",
            ),
            Node(
                preview_synthetic_anomalies,
                inputs=[
                    "train_set",
                    "foreground_masks",
                    "texture_bank",
                    "params:synthesis",
                    "params:model.num_steps",
                    "params:seed",
                ],
                outputs="synthetic_preview",
                name="preview_synthetic_anomalies",
            ),
        ]
    )
