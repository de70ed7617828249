"""Runtime parameters in ``kedro run --params`` syntax, shared by every category of a sweep."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from transfusion_ad.sweep.errors import SweepError

# Set per task by the sweep itself (--dataset, --categories), never through --params.
RESERVED = ("category", "dataset", "run_suffix")


def parse_runtime_params(text: str | None) -> dict[str, Any]:
    """``"training.epochs=1,image_size=32"`` -> ``{"training": {"epochs": 1}, "image_size": 32}``.

    The same rules as ``kedro run --params``: items split on commas, dotted keys nest, values are
    typed by OmegaConf (ints, floats, booleans; the rest are strings).
    """
    if not text:
        return {}
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        key, equals, _ = item.partition("=")
        if not equals or not key.strip():
            raise SweepError(
                f"Invalid --params item {item!r}: write key=value (e.g. training.epochs=1)."
            )
        if key.strip().split(".")[0] in RESERVED:
            raise SweepError(
                f"--params sets {key.strip()!r}, which the sweep sets per task: "
                "use --dataset, --categories and --seeds instead."
            )
    dotlist = [f"{key.strip()}={value}" for key, _, value in (i.partition("=") for i in items)]
    return OmegaConf.to_container(OmegaConf.from_dotlist(dotlist))
