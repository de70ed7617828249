"""bf16 autocast in CPU training (issue 20): the same run twice, fp32 and bf16, and what bf16 does
to the speed and to the loss curve.

    .venv/bin/python benchmarks/bf16_training.py --epochs 15 --json benchmarks/bf16_training.json

The small CPU recipe (conf/quick) on the shipped sample's 60 training images, seed 3, the
sample's 10 textures, foreground all ones; the same initial weights and random streams for both.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.harness import cpu_extensions  # noqa: E402
from transfusion_ad.conf_recipes import conf_recipe, project_parameters  # noqa: E402
from transfusion_ad.core.device import prepare_cpu  # noqa: E402
from transfusion_ad.core.recipes import model_from_recipe  # noqa: E402
from transfusion_ad.core.schedule import TransparencySchedule  # noqa: E402
from transfusion_ad.core.synthesis import AnomalySynthesizer, SynthesisConfig  # noqa: E402
from transfusion_ad.core.trainer import TrainConfig, Trainer, seed_everything  # noqa: E402
from transfusion_ad.data import TrainingImages, load_images  # noqa: E402

SAMPLE = ROOT / "data" / "01_raw" / "sample"


def train(bf16: bool, epochs: int) -> dict:
    """One run: per-epoch mean total loss and seconds."""
    parameters = project_parameters(ROOT, "quick")
    recipe = conf_recipe(ROOT, "quick")
    size = recipe["image_size"]
    images = load_images(sorted(str(p) for p in (SAMPLE / "fryum/train/good").iterdir()), size)
    textures = load_images(sorted(str(p) for p in (SAMPLE / "textures").iterdir()), size).images
    training = parameters["training"]
    config = TrainConfig(
        epochs=epochs,
        batch_size=training["batch_size"],
        lr=training["lr"],
        seed=parameters["seed"],
        device="cpu",
        bf16=bf16,
        progress=False,
    )
    seed_everything(config.seed)
    synthesizer = AnomalySynthesizer(
        textures, SynthesisConfig.from_params(parameters["synthesis"]), recipe["num_steps"]
    )
    trainer = Trainer(
        model_from_recipe(recipe), TransparencySchedule(recipe["num_steps"]), synthesizer, config
    )
    foreground = torch.ones(len(images.images), 1, size, size, dtype=torch.bool)
    start = time.perf_counter()
    history = trainer.fit(TrainingImages(images.images, foreground))
    return {
        "bf16": bf16,
        "seconds": time.perf_counter() - start,
        "epoch_losses": [result.losses["total"] for result in history.results],
        "epoch_seconds": [result.seconds for result in history.results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    prepare_cpu()
    runs = [train(False, args.epochs), train(True, args.epochs)]
    fp32, bf16 = (run["epoch_losses"] for run in runs)
    summary = {
        "cpu_extensions": cpu_extensions(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "speed_up": runs[0]["seconds"] / runs[1]["seconds"],
        "max_relative_loss_difference": max(
            abs(b - f) / f for f, b in zip(fp32, bf16, strict=True)
        ),
        "runs": runs,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    print("fp32", [round(v, 4) for v in fp32])
    print("bf16", [round(v, 4) for v in bf16])
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
