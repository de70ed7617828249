"""--params parses as `kedro run --params` does; the sweep's own keys are refused."""

import pytest

from transfusion_ad.sweep import SweepError, parse_runtime_params


def test_dotted_keys_nest_and_values_are_typed():
    parsed = parse_runtime_params(
        "training.epochs=1, image_size=32,training.lr=3e-4,data_root=/data/parts,"
        "training.bf16=true,mlflow_tracking_uri=http://host:5000"
    )
    assert parsed == {
        "training": {"epochs": 1, "lr": 3e-4, "bf16": True},
        "image_size": 32,
        "data_root": "/data/parts",
        "mlflow_tracking_uri": "http://host:5000",
    }


@pytest.mark.parametrize("text", [None, ""])
def test_nothing_gives_no_params(text):
    assert parse_runtime_params(text) == {}


@pytest.mark.parametrize(("text", "message"), [("epochs", "key=value"), ("=3", "key=value")])
def test_items_without_a_key_and_value_are_refused(text, message):
    with pytest.raises(SweepError, match=message):
        parse_runtime_params(text)


@pytest.mark.parametrize("key", ["category", "dataset", "run_suffix"])
def test_keys_the_sweep_sets_per_task_are_refused(key):
    with pytest.raises(SweepError, match=f"'{key}'.*--dataset, --categories and --seeds"):
        parse_runtime_params(f"image_size=32,{key}=x")
