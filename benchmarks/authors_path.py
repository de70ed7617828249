"""The real anchor of the speed ratios: the authors' own code (public repository
MaticFuc/ECCV_TransFusion), imported from a checkout the user provides, timed by the same
harness as the project's paths (``benchmarks/run.py --authors-repo DIR``).

Nothing of their code is in this repository. The checkout needs ``.cuda()`` replaced by
``.cpu()`` to run on a CPU (their code calls it in the model, the synthesis and the evaluation)
and their dependencies importable (imgaug 0.4.0, positional-encodings, einops, imageio,
scikit-image, shapely); benchmarks/README.md ("Against the authors' code") has the commands.
Their ``Dataset`` fixes 256 px, so the images here are made at the recipe's size and handed to
their ``TransFusion.loss`` and ``get_transparentfussion_sample`` directly, as their
``Experiment.train`` and ``Experiment.evaluate`` do per batch and per image.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

# The number of foreground masks their synthesis indexes (one per sample of a batch).
_MASKS = 8


def _import_authors(repo: Path) -> dict[str, Any]:
    """Their modules, from ``repo`` (which has no __init__.py: the root goes on sys.path)."""
    if not (repo / "model" / "TransFusion.py").is_file():
        raise FileNotFoundError(
            f"--authors-repo {repo} is not a checkout of MaticFuc/ECCV_TransFusion (no "
            "model/TransFusion.py); see benchmarks/README.md, 'Against the authors' code'."
        )
    if not hasattr(np, "sctypes"):  # imgaug 0.4.0 reads this alias, removed in NumPy 2.0
        np.sctypes = {  # type: ignore[attr-defined]
            "int": [np.int8, np.int16, np.int32, np.int64],
            "uint": [np.uint8, np.uint16, np.uint32, np.uint64],
            "float": [np.float16, np.float32, np.float64, np.longdouble],
            "complex": [np.complex64, np.complex128, np.clongdouble],
            "others": [bool, object, bytes, str, np.void],
        }
    sys.path.insert(0, str(repo))
    from model.TransFusion import TransFusion
    from model.UNet import UNet
    from utils.EvaluationUtils import get_transparentfussion_sample

    return {"TransFusion": TransFusion, "UNet": UNet, "sample": get_transparentfussion_sample}


def _inputs_folder(size: int, textures: list[Path]) -> Path:
    """A folder laid out as their synthesis reads it: DTD as ``<root>/dtd/<class>/*.jpg`` and
    foreground masks as ``<root>/visa_masks/bench/train/good/*.png`` (all foreground)."""
    root = Path(tempfile.mkdtemp(prefix="authors_inputs_"))
    dtd = root / "dtd" / "textures"
    dtd.mkdir(parents=True)
    for index, path in enumerate(textures):
        image = cv2.imread(str(path))
        cv2.imwrite(str(dtd / f"{index:03d}.jpg"), image)
    masks = root / "visa_masks" / "bench" / "train" / "good"
    masks.mkdir(parents=True)
    for index in range(_MASKS):
        cv2.imwrite(str(masks / f"{index:03d}.png"), np.full((size, size), 255, np.uint8))
    return root


def build_network(recipe: dict[str, Any], repo: Path, textures: list[Path]) -> torch.nn.Module:
    """Their TransFusion (UNet inside) for the recipe's architecture, RGB mode, seeded."""
    modules = _import_authors(repo)
    levels = len(recipe["channel_mults"])
    unet = modules["UNet"](
        {
            "n_channels": recipe["base_width"],
            "ch_mults": list(recipe["channel_mults"]),
            "is_attn": [level in recipe["attention_levels"] for level in range(levels)],
            "use_groups": [True] * levels,
            "n_blocks": recipe["num_res_blocks"],
            "image_channels": 3,
            "is_rgbd": False,
        }
    )
    inputs = _inputs_folder(recipe["image_size"], textures)
    torch.manual_seed(0)
    np.random.seed(0)
    return modules["TransFusion"](
        unet,
        {
            "num_steps": recipe["num_steps"],
            "mode": "rgb",
            "noise_generator_parameters": {
                "img_size": recipe["image_size"],
                "path": str(inputs / "dtd"),
                "use_pretrained_masks": True,
                "is_texture": False,
                "fg_mask_path": str(inputs),
                "dataset": "visa",
                "category": "bench",
                "mode": "rgb",
            },
        },
    )


def train_call(
    recipe: dict[str, Any], repo: Path, textures: list[Path], images: torch.Tensor
) -> Callable[[], object]:
    """One step of their ``Experiment.train``: zero_grad, ``net.loss`` (synthesis inside),
    backward, AdamW step (their lr 1e-5, torch's default weight decay), the loss logged."""
    net = build_network(recipe, repo, textures).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-5)
    index = torch.arange(images.shape[0]) % _MASKS

    def step() -> None:
        optimizer.zero_grad()
        loss = net.loss(images.clone(), idx=index)  # their loss rotates x0 in place
        loss.backward()
        optimizer.step()
        loss.item()

    return step


def infer_call(
    recipe: dict[str, Any], repo: Path, textures: list[Path], images: torch.Tensor
) -> Callable[[], object]:
    """Their reverse process, one image at a time as ``Experiment.evaluate`` runs it, after
    ``net.eval()``: ``get_transparentfussion_sample(net, T - 1, image)`` per image."""
    net = build_network(recipe, repo, textures).eval()
    sample = _import_authors(repo)["sample"]

    def reverse() -> None:
        for image in images:
            sample(net, net.steps - 1, image)

    return reverse
