"""The authors' released weights as this project's network: their ``{category}_model.pkl`` (a
``torch.save(net.state_dict())`` of their TransFusion module, RGB mode, keys ``model.*``, float16
or float32) renamed onto TransFusionUNet, with the architecture read from the tensor shapes.

The renaming was written from the names their UNet uses (public repository
MaticFuc/ECCV_TransFusion, model/UNet.py); their positional-encoding buffer
(``pos_emb.penc.inv_freq``, 1.0) is a constant this network computes itself.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from transfusion_ad.core.bundle import make_bundle
from transfusion_ad.core.unet import TransFusionUNet

_PREFIX = "model."
_CONSTANT_BUFFERS = ("pos_emb.penc.inv_freq",)
_RGB_STEM_CHANNELS = 5  # 3 image + 1 mask + 1 positional channel
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^middle\.res1\.time_emb\.", "middle.0.time_proj."),
    (r"^middle\.res2\.time_emb\.", "middle.2.time_proj."),
    (r"^middle\.res1\.", "middle.0."),
    (r"^middle\.attn\.projection\.", "middle.1.qkv."),
    (r"^middle\.attn\.output\.", "middle.1.out."),
    (r"^middle\.res2\.", "middle.2."),
    (r"^image_proj\.", "stem."),
    (r"^time_emb\.", "time_embedding."),
    (r"\.res\.time_emb\.", ".res.time_proj."),
    (r"\.attn\.projection\.", ".attn.qkv."),
    (r"\.attn\.output\.", ".attn.out."),
    (r"^(down|up)\.(\d+)\.conv\.", r"\1.\2."),
    (r"^norm\.", "anomaly_head.0."),
    (r"^final\.", "anomaly_head.2."),
    (r"^final_mean\.", "normal_head."),
    (r"^final_seg\.norm\.", "mask_head.0."),
    (r"^final_seg\.conv\.", "mask_head.2."),
)


class AuthorsWeightsError(ValueError):
    """A file that is not a state dict of the authors' RGB TransFusion network."""


def _renamed(name: str) -> str:
    for pattern, replacement in _RENAMES:
        name = re.sub(pattern, replacement, name)
    return name


def architecture(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """TransFusionUNet's arguments read from the authors' tensor shapes (keys without
    ``model.``): base width from the input projection, levels, widths, blocks per level and
    attention from the encoder's entries."""
    stem = state["image_proj.weight"]
    base_width = int(stem.shape[0])
    levels: list[dict[str, Any]] = [{"width": None, "blocks": 0, "attention": False}]
    indices = sorted({int(k.split(".")[1]) for k in state if k.startswith("down.")})
    for index in indices:
        prefix = f"down.{index}."
        if f"{prefix}conv.weight" in state:
            levels.append({"width": None, "blocks": 0, "attention": False})
            continue
        level = levels[-1]
        level["blocks"] += 1
        level["width"] = int(state[f"{prefix}res.conv1.weight"].shape[0])
        level["attention"] |= f"{prefix}attn.projection.weight" in state
    blocks = {level["blocks"] for level in levels}
    if len(blocks) != 1:
        raise AuthorsWeightsError(f"levels with different block counts {sorted(blocks)}")
    widths = [base_width] + [level["width"] for level in levels]
    return {
        "base_width": base_width,
        # Per-level multipliers of the previous level's width, as TransFusionUNet takes them.
        "channel_mults": [after // before for before, after in itertools.pairwise(widths)],
        "num_res_blocks": blocks.pop(),
        "attention_levels": [i for i, level in enumerate(levels) if level["attention"]],
    }


def network_from_authors(source: str | Path | Mapping[str, Tensor]) -> TransFusionUNet:
    """This project's network with the authors' weights (float32), in eval mode.

    Refuses, saying what was found, a file that is not a state dict, one of another network, or
    an RGB-D (MVTec 3D-AD) checkpoint."""
    name = str(source) if not isinstance(source, Mapping) else "the state dict"
    state = source
    if not isinstance(source, Mapping):
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as error:
            raise AuthorsWeightsError(
                f"{name} is not a PyTorch file this project can read without unpickling code "
                f"({type(error).__name__}: {error})."
            ) from error
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise AuthorsWeightsError(
            f"{name} holds a {type(state).__name__}, not the state dict their training writes "
            "(torch.save(net.state_dict()), keys starting with 'model.')."
        )
    if not state or not all(key.startswith(_PREFIX) for key in state):
        raise AuthorsWeightsError(
            f"{name} is not the authors' TransFusion state dict: its keys do not all start with "
            f"'model.' (found e.g. {sorted(state)[:3]})."
        )
    theirs = {key[len(_PREFIX) :]: value for key, value in state.items()}
    if "image_proj.weight" not in theirs:
        raise AuthorsWeightsError(f"{name} has no 'model.image_proj.weight': not their UNet.")
    channels = int(theirs["image_proj.weight"].shape[1])
    if channels != _RGB_STEM_CHANNELS:
        raise AuthorsWeightsError(
            f"{name} takes {channels} input channels, not {_RGB_STEM_CHANNELS} (RGB + mask + "
            "position): an RGB-D (MVTec 3D-AD) or other-mode checkpoint, which this project "
            "does not implement."
        )
    try:
        config = architecture(theirs)
        network = TransFusionUNet(**config)
    except (KeyError, ValueError) as error:
        raise AuthorsWeightsError(f"{name}: cannot read the architecture ({error}).") from error
    ours = {
        _renamed(key): value.float() if value.is_floating_point() else value
        for key, value in theirs.items()
        if key not in _CONSTANT_BUFFERS
    }
    expected = network.state_dict()
    missing, unexpected = sorted(set(expected) - set(ours)), sorted(set(ours) - set(expected))
    wrong = [k for k in set(ours) & set(expected) if ours[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise AuthorsWeightsError(
            f"{name} does not map onto the network {config}: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, other shapes {sorted(wrong)[:5]}."
        )
    network.load_state_dict(ours)
    return network.eval()


AUTHORS_NUM_STEPS = 20  # T of their code and of every released model
AUTHORS_SCORING = {"mask_divisor": "paper", "fusion_weight": 0.95, "box_size": 7}


def bundle_from_authors(weights: str | Path, image_size: int = 256) -> dict[str, Any]:
    """A model bundle (core.bundle) of the authors' weights, with their recipe at
    ``image_size`` and their scoring (sum of soft masks / (T − 1), 7×7 box, w = 0.95)."""
    network = network_from_authors(weights)
    config = network.config
    recipe = {
        "image_size": int(image_size),
        "base_width": config["base_width"],
        "channel_mults": list(config["channel_mults"]),
        "num_res_blocks": config["num_res_blocks"],
        "attention_levels": list(config["attention_levels"]),
        "num_steps": AUTHORS_NUM_STEPS,
    }
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    return make_bundle(
        network,
        recipe=recipe,
        train_config={
            "source": "authors' released weights",
            "file": str(weights),
            "sha256": digest,
        },
        epochs=0,
        scoring=AUTHORS_SCORING,
    )
