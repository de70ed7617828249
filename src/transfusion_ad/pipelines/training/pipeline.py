"""training: train_set + foreground masks + texture bank -> versioned model checkpoint."""

from kedro.pipeline import Node, Pipeline

from transfusion_ad.pipelines.training.nodes import train_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                train_model,
                inputs=[
                    "train_set",
                    "foreground_masks",
                    "texture_bank",
                    "params:model",
                    "params:training",
                    "params:losses",
                    "params:synthesis",
                    "params:image_size",
                    "params:seed",
                    "params:device",
                    "params:dataset",
                    "params:category",
                    "params:protocol",
                ],
                outputs=["model_checkpoint", "training_history"],
                name="train_transfusion_model",
            )
        ]
    )
