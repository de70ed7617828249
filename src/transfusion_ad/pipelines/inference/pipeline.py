"""inference: model checkpoint + image sets -> soft masks and reconstructions."""

from kedro.pipeline import Node, Pipeline

from transfusion_ad.pipelines.inference.nodes import run_reverse_process

_SETTINGS = [
    "params:inference",
    "params:evaluation",
    "params:image_size",
    "params:model",
    "params:device",
]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                run_reverse_process,
                inputs=["model_checkpoint", "test_set", *_SETTINGS],
                outputs="test_outputs",
                name="reverse_process_test_images",
            ),
            Node(
                run_reverse_process,
                inputs=["model_checkpoint", "holdout_set", *_SETTINGS],
                outputs="holdout_outputs",
                name="reverse_process_holdout_images",
            ),
        ]
    )
