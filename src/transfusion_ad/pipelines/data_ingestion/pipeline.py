"""data_ingestion: category_index -> manifest (with holdout) -> decoded train/holdout/test sets."""

from kedro.pipeline import Node, Pipeline

from transfusion_ad.pipelines.data_ingestion.nodes import (
    load_holdout_set,
    load_test_set,
    load_train_set,
    record_skipped_images,
    split_holdout,
    validate_index,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                validate_index,
                inputs=["category_index", "params:data"],
                outputs=["validated_index", "unreadable_headers"],
                name="validate_category_files",
            ),
            Node(
                split_holdout,
                inputs=["validated_index", "params:data", "params:seed", "params:protocol"],
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
                inputs=["manifest", "params:image_size", "params:data", "params:protocol"],
                outputs="test_set",
                name="load_test_images_and_masks",
            ),
            Node(
                record_skipped_images,
                inputs=["unreadable_headers", "train_set", "holdout_set", "test_set"],
                outputs="data_quality",
                name="record_skipped_images",
            ),
        ]
    )
