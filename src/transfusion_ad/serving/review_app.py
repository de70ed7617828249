"""``transfusion-ad app``: a review page where a person drops an image of a part and sees its
score, the verdict, the anomaly map over the image on the fixed colour scale and the mask at the
pixel threshold, beside the last evaluation's best and worst scored test images.

Gradio (optional extra ``app``), bound to 127.0.0.1 unless ``--host`` says otherwise. The page's
scoring function is also its HTTP API (``/score``), so a script can call it with gradio_client.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from transfusion_ad.core.detector import TransFusionDetector
from transfusion_ad.reporting.overlays import HeatmapStyle, overlay

GALLERY_FIGURES = ("best_worst_anomalous.png", "best_worst_normal.png", "score_histogram.png")


def review(detector: TransFusionDetector, picture: Image.Image) -> dict[str, Any]:
    """Score one picture: {"score", "anomalous", "image_threshold", "overlay" (H, W, 3) uint8,
    "mask" (H, W) uint8 0/255}."""
    rgb = picture.convert("RGB")
    output = detector([rgb], batch_size=1)
    thresholds = detector.thresholds or {}
    pixels = np.asarray(rgb)
    heat = overlay(pixels, output.maps[0], HeatmapStyle(), thresholds.get("pixel"))
    mask = output.masks[0] if output.masks is not None else np.zeros(pixels.shape[:2], bool)
    return {
        "score": float(output.scores[0]),
        "anomalous": bool(output.anomalous[0]) if output.anomalous is not None else None,
        "image_threshold": thresholds.get("image"),
        "overlay": heat,
        "mask": mask.astype(np.uint8) * 255,
    }


def build_app(detector: TransFusionDetector, figures: Path | None, title: str) -> Any:
    """The Gradio Blocks of the page."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    def score(picture: Image.Image | None) -> tuple[dict[str, Any], Any, Any]:
        if picture is None:
            raise gr.Error("Drop or pick an image of a part first.")
        result = review(detector, picture)
        verdict = {key: result[key] for key in ("score", "anomalous", "image_threshold")}
        return verdict, result["overlay"], result["mask"]

    gallery = [
        str(figures / name) for name in GALLERY_FIGURES if figures and (figures / name).is_file()
    ]
    with gr.Blocks(title=title) as app:
        gr.Markdown(
            f"# {title}\nDrop an image of a part: its score, the verdict at the "
            "calibrated threshold, the anomaly map over the image (fixed colour scale "
            "0 to 1) and the mask at the pixel threshold."
        )
        with gr.Row():
            picture = gr.Image(type="pil", label="part")
            with gr.Column():
                verdict = gr.JSON(label="verdict")
                heat = gr.Image(label="anomaly map over the image", format="png")
                mask = gr.Image(label="mask at the pixel threshold", format="png")
        gr.Button("Score").click(
            score, inputs=picture, outputs=[verdict, heat, mask], api_name="score"
        )
        if gallery:
            gr.Gallery(
                gallery,
                label="last evaluation: best and worst scored test images",
                columns=1,
                object_fit="contain",
                height="auto",
            )
    return app


def serve(
    detector: TransFusionDetector, figures: Path | None, title: str, host: str, port: int
) -> None:
    """Start the page and block until it is stopped (Gradio's usage analytics off: no
    network at run time)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    build_app(detector, figures, title).launch(
        server_name=host, server_port=port, share=False, show_error=True
    )
