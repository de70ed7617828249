"""evaluation: outputs -> fused maps -> thresholds (holdout; the paper protocol: test good images)
-> metrics, figures, report.

The reverse-process strip runs the model once more, on two test images, for its step records.
"""

from kedro.pipeline import Node, Pipeline

from transfusion_ad.core.bundle import with_thresholds
from transfusion_ad.pipelines.evaluation.nodes import (
    calibrate,
    compute_metrics,
    fuse_anomaly_maps,
    log_deployable_model,
    make_figures,
    plot_reverse_process,
    write_report,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                fuse_anomaly_maps,
                inputs=["test_outputs", "test_set", "params:inference", "params:evaluation"],
                outputs="anomaly_maps",
                name="fuse_test_anomaly_maps",
            ),
            Node(
                fuse_anomaly_maps,
                inputs=["holdout_outputs", "holdout_set", "params:inference", "params:evaluation"],
                outputs="holdout_maps",
                name="fuse_holdout_anomaly_maps",
            ),
            Node(
                calibrate,
                inputs=[
                    "holdout_maps",
                    "model_checkpoint",
                    "params:inference",
                    "params:evaluation",
                    "anomaly_maps",
                    "params:protocol",
                ],
                outputs="thresholds",
                name="calibrate_thresholds_on_holdout",
            ),
            Node(
                with_thresholds,
                inputs=["model_checkpoint", "thresholds"],
                outputs="model_bundle",
                name="bundle_model_with_thresholds",
            ),
            Node(
                log_deployable_model,
                inputs=[
                    "model_bundle",
                    "test_set",
                    "params:mlflow",
                    "params:dataset",
                    "params:category",
                ],
                outputs=None,
                name="log_mlflow_model",
            ),
            Node(
                compute_metrics,
                inputs=[
                    "anomaly_maps",
                    "test_set",
                    "thresholds",
                    "params:evaluation",
                    "params:protocol",
                ],
                outputs=["metrics", "metrics_history", "mlflow_metrics"],
                name="compute_test_metrics",
            ),
            Node(
                make_figures,
                inputs=[
                    "anomaly_maps",
                    "test_set",
                    "metrics",
                    "params:evaluation",
                    "params:heatmap",
                    "params:figures",
                ],
                outputs=["evaluation_figures", "figure_names"],
                name="plot_evaluation_figures",
            ),
            Node(
                plot_reverse_process,
                inputs=[
                    "model_checkpoint",
                    "test_set",
                    "anomaly_maps",
                    "thresholds",
                    "params:heatmap",
                    "params:figures",
                    "params:device",
                ],
                outputs="reverse_process_strip",
                name="plot_reverse_process_strip",
            ),
            Node(
                write_report,
                inputs=[
                    "metrics",
                    "anomaly_maps",
                    "figure_names",
                    "model_checkpoint",
                    "params:dataset",
                    "params:category",
                    "params:evaluation",
                ],
                outputs="report",
                name="write_category_report",
            ),
        ]
    )
