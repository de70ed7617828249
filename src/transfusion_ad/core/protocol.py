"""The evaluation protocol: this project's leak-free default, or the authors' for like-for-like
reproduction (docs/method.md, "Deliberate departures").

Why one switch: a researcher comparing with the paper needs every departure undone at once, and
every number must say which protocol made it. ``default`` holds 10 % of train/good out for the
thresholds, resizes ground truth by area coverage and uses the unit-range SSIM. ``paper`` trains
on all of train/good (thresholds then come from the test set's good images, marked as such),
resizes ground truth as the authors do (PIL bilinear, then > 0.5 on 0–255) and uses their signed
SSIM in the normal-appearance loss.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transfusion_ad.core.resize import MaskMethod

logger = logging.getLogger(__name__)

DEFAULT, PAPER = "default", "paper"
PROTOCOLS: tuple[str, ...] = (DEFAULT, PAPER)

# Threshold sources (thresholds["calibration"]["source"]); only TEST_GOOD comes from test images.
HOLDOUT, TEST_GOOD = "holdout", "test_good"

# From this image size on (the paper's) a recipe needs DTD; smaller ones may use the 10 shipped.
DTD_REQUIRED_FROM_SIZE = 256


@dataclass(frozen=True)
class Protocol:
    """What one protocol decides.

    holdout: whether normal training images are held out (never trained on) for the thresholds.
    mask_resize: how ground-truth masks reach the model resolution (core.resize).
    normal_ssim_range: the SSIM form of the normal-appearance loss, None for the configured one.
    threshold_source: where the thresholds come from (HOLDOUT or TEST_GOOD).
    """

    name: str
    holdout: bool
    mask_resize: MaskMethod
    normal_ssim_range: str | None
    threshold_source: str

    @classmethod
    def named(cls, name: str) -> Protocol:
        """The protocol called ``name`` (the ``protocol`` parameter)."""
        if name == DEFAULT:
            return cls(DEFAULT, True, "area", None, HOLDOUT)
        if name == PAPER:
            return cls(PAPER, False, "bilinear", "signed", TEST_GOOD)
        raise ValueError(
            f"protocol must be one of {', '.join(PROTOCOLS)}, got {name!r} (set it in "
            "conf/<env>/parameters.yml, with --env paper, or --params protocol=paper)"
        )

    def losses(self, configured: Mapping[str, Any]) -> dict[str, Any]:
        """The loss settings this protocol trains with: the configured ones, with the authors'
        form of every loss under ``paper``."""
        losses = dict(configured)
        if self.normal_ssim_range is not None:
            losses["normal_ssim_range"] = self.normal_ssim_range
        return losses

    def requires_dtd(self, image_size: int) -> bool:
        """DTD is required by the paper protocol and by every recipe at 256 px or more; only the
        small CPU recipes may fall back to the shipped textures."""
        return self.name == PAPER or image_size >= DTD_REQUIRED_FROM_SIZE


def thresholds_from_test_set(thresholds: Mapping[str, Any]) -> bool:
    """Whether these thresholds were calibrated on test images (the paper protocol)."""
    calibration = thresholds.get("calibration") or {}
    return calibration.get("source") == TEST_GOOD


def warn_if_test_calibrated(thresholds: Mapping[str, Any] | None, where: str) -> bool:
    """Log a warning when ``thresholds`` (of ``where``, e.g. a bundle path) were calibrated on
    test images; returns whether it warned. Scoring new parts with them is allowed, never
    silent."""
    if not thresholds or not thresholds_from_test_set(thresholds):
        return False
    logger.warning(
        "The thresholds of %s were calibrated on the test set's good images (protocol paper), "
        "so they are no independent estimate of what the model does on new parts. Calibrate "
        "them on good images of your own first: kedro run --pipelines calibrate --params "
        "good_dir=<folder>.",
        where,
    )
    return True
