"""data_ingestion: category_index -> manifest (with holdout) -> decoded train/holdout/test sets."""

from kedro.pipeline import Node, Pipeline

from transfusion_ad.pipelines.data_ingestion.nodes import (
    load_holdout_set,
    load_test_set,
    load_train_set,
    split_holdout,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                split_holdout,
                inputs=["category_index", "params:data", "params:seed"],
                outputs="manifest",
                name="split_holdout_normals",
            ),
            Node(
                load_train_set,
                inputs=["manifest", "params:image_size", "params:data"],
                outputs="train_set",
                name="load_train_images",
            ),
            Node(
                load_holdout_set,
                inputs=["manifest", "params:image_size", "params:data"],
                outputs="holdout_set",
                name="load_holdout_images",
            ),
            Node(
                load_test_set,
                inputs=["manifest", "params:image_size", "params:data"],
                outputs="test_set",
                name="load_test_images_and_masks",
            ),
        ]
    )
