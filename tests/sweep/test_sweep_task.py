"""A category task reports its failure instead of raising, naming what went wrong."""

import torch

from transfusion_ad.sweep import CategoryTask, KedroTarget, run_category


def test_a_project_missing_on_the_worker_is_a_failed_category_saying_why(tmp_path):
    target = KedroTarget(tmp_path / "not_here", env="quick", params={"dataset": "visa"})
    task = CategoryTask(target, "fryum", "s1", None, num_threads=torch.get_num_threads())
    result = run_category(task)
    assert not result.succeeded and result.category == "fryum"
    assert result.metrics is None and result.run_id is None
    assert "not_here' does not exist on worker node" in result.error
    assert result.error.startswith("FileNotFoundError")


def test_runtime_params_carry_the_category_over_the_shared_ones(tmp_path):
    target = KedroTarget(tmp_path, params={"dataset": "folder", "image_size": 32})
    assert target.runtime_params("bracket") == {
        "dataset": "folder",
        "image_size": 32,
        "category": "bracket",
    }
    assert target.runtime_params() == {"dataset": "folder", "image_size": 32}
