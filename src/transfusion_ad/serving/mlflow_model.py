"""The model bundle as an MLflow pyfunc model, so that ``mlflow models serve`` scores images
over HTTP with the same TransFusionDetector as the evaluation.

Input: a DataFrame with one string column ``image`` of base64-encoded PNG or JPEG bytes, e.g.
``{"dataframe_split": {"columns": ["image"], "data": [["<base64>"]]}}`` posted to
``/invocations``. Output: one record per image with ``score`` (float), ``anomalous`` (bool) and,
when the model config asks for it (``return_map: true``), ``map``, the anomaly map as a 16-bit
PNG (value × 65535) at the image's own size, base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, Schema
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

BUNDLE_ARTIFACT = "bundle"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
_REQUIREMENTS = ("torch", "torchvision", "numpy", "pillow", "opencv-python-headless", "pandas")


def registered_name(dataset: str, category: str) -> str:
    """The registry name of a category's model."""
    return f"transfusion_ad-{dataset}-{category}"


def encode_image(path: str | Path) -> str:
    """A file's bytes as the base64 text the ``image`` column takes."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def decode_image(text: str, row: int) -> Image.Image:
    """The picture in one ``image`` cell; a clear error naming the row otherwise."""
    try:
        data = base64.b64decode(text, validate=True)
        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
            return picture.copy()
    except (binascii.Error, UnidentifiedImageError, OSError, TypeError) as error:
        raise ValueError(
            f"row {row} of column 'image' is not a base64-encoded PNG or JPEG ({error})."
        ) from error


def _map_png(score_map: np.ndarray) -> str:
    pixels = (np.clip(score_map, 0.0, 1.0) * 65535.0).round().astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class TransFusionPyfunc(PythonModel):
    """Loads the bundle artifact once into a TransFusionDetector; scores each request."""

    def load_context(self, context: PythonModelContext) -> None:
        from transfusion_ad.core.detector import TransFusionDetector
        from transfusion_ad.core.device import prepare_cpu

        prepare_cpu()
        config = context.model_config or {}
        self.detector = TransFusionDetector.load(
            context.artifacts[BUNDLE_ARTIFACT],
            device=config.get("device", "auto"),
            precision=config.get("precision", "fp32"),
        )
        self.batch_size = int(config.get("batch_size", 8))
        self.return_map = bool(config.get("return_map", False))

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        if "image" not in model_input.columns:
            raise ValueError(f"the input needs a column 'image' (got {list(model_input.columns)}).")
        pictures = [decode_image(text, row) for row, text in enumerate(model_input["image"])]
        output = self.detector(pictures, batch_size=self.batch_size)
        frame = pd.DataFrame(
            {"score": output.scores.astype(float), "anomalous": output.anomalous.astype(bool)}
        )
        if self.return_map:
            frame["map"] = [_map_png(m) for m in output.maps]
        return frame


def _pinned_requirements() -> list[str]:
    """The packages the detector needs, at the versions installed here."""
    pinned = []
    for name in _REQUIREMENTS:
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return [*pinned, f"mlflow=={mlflow.__version__}"]


def log_model(
    bundle_path: str | Path,
    example_image: str | Path,
    name: str | None,
    model_config: dict[str, Any] | None = None,
) -> Any:
    """Log the bundle file as a pyfunc model in the active run, registered as ``name`` when
    given. Returns MLflow's ModelInfo."""
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", "image")]),
        outputs=Schema([ColSpec("double", "score"), ColSpec("boolean", "anomalous")]),
    )
    return mlflow.pyfunc.log_model(
        name="transfusion_ad_model",
        python_model=TransFusionPyfunc(),
        artifacts={BUNDLE_ARTIFACT: str(bundle_path)},
        signature=signature,
        input_example=pd.DataFrame({"image": [encode_image(example_image)]}),
        pip_requirements=_pinned_requirements(),
        registered_model_name=name,
        model_config=model_config or {},
    )


def open_in_model_training_view() -> None:
    """Tag the active run's experiment so that the MLflow UI opens it in its model-training
    view (MLflow 3 infers the GenAI view for an experiment without this tag)."""
    run = mlflow.active_run()
    if run is not None:
        mlflow.MlflowClient().set_experiment_tag(
            run.info.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
        )
