"""The review page, started as `transfusion-ad app` on 127.0.0.1 in its own process group and
called over HTTP with gradio_client: a sample image gets the score the evaluation gave it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support import free_port, start_in_own_group, stop_group, wait_for_http

pytestmark = pytest.mark.slow  # trains a model or runs a pipeline

gradio_client = pytest.importorskip("gradio_client")


@pytest.mark.slow
def test_the_review_page_scores_an_image_as_the_evaluation(trained_project):
    maps = next((trained_project / "data/07_model_output/visa/fryum").glob("anomaly_maps.pt/*/*"))
    evaluated = torch.load(maps, weights_only=True)
    index = int(torch.argmax(evaluated["scores"]))
    path = evaluated["paths"][index]
    port = free_port()
    command = Path(sys.executable).with_name("transfusion-ad")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    server = start_in_own_group(
        [str(command), "app", "--env", "quick", "--category", "fryum", "--port", str(port)],
        cwd=trained_project,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_http(url, server, timeout=180)
        client = gradio_client.Client(url, verbose=False)
        verdict, heat, mask = client.predict(gradio_client.handle_file(path), api_name="/score")
    finally:
        stop_group(server)
    assert verdict["score"] == pytest.approx(float(evaluated["scores"][index]), abs=1e-5)
    assert verdict["anomalous"] == (verdict["score"] >= verdict["image_threshold"])
    with Image.open(path) as original, Image.open(heat) as overlay, Image.open(mask) as binary:
        assert overlay.size == binary.size == original.size
        assert set(np.unique(np.asarray(binary.convert("L")))) <= {0, 255}
