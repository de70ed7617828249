"""Score new images with a trained model: heat-map overlays, binary masks and a scores CSV."""

from transfusion_ad.pipelines.predict.pipeline import create_pipeline

__all__ = ["create_pipeline"]
