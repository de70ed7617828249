"""Readers for MVTec AD, VisA (raw and 1cls layouts) and user folders in MVTec layout."""

from transfusion_ad.data.errors import DataLayoutError, UnreadableImageError
from transfusion_ad.data.images import load_image, load_mask
from transfusion_ad.data.index import LAYOUTS, detect_layout, index_category, validate_manifest
from transfusion_ad.data.loading import LoadedImages, TrainingImages, load_images, to_model_range

__all__ = [
    "LAYOUTS",
    "DataLayoutError",
    "LoadedImages",
    "TrainingImages",
    "UnreadableImageError",
    "detect_layout",
    "index_category",
    "load_image",
    "load_images",
    "load_mask",
    "to_model_range",
    "validate_manifest",
]
