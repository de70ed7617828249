"""Readers for MVTec AD, VisA (raw and 1cls layouts) and user folders in MVTec layout."""

from transfusion_ad.data.errors import DataLayoutError, UnreadableImageError
from transfusion_ad.data.images import load_image, load_mask
from transfusion_ad.data.index import LAYOUTS, detect_layout, index_category

__all__ = [
    "LAYOUTS",
    "DataLayoutError",
    "UnreadableImageError",
    "detect_layout",
    "index_category",
    "load_image",
    "load_mask",
]
