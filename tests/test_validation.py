"""Every parameter rule stops a run before work, naming the key, the value and the rule."""

from __future__ import annotations

import pytest

from transfusion_ad.conf_recipes import project_parameters
from transfusion_ad.validation import ParameterError, check_parameter_keys, validate_parameters

GOOD = {
    "dataset": "mvtec_ad",
    "layout": "auto",
    "image_size": 256,
    "seed": 3,
    "device": "auto",
    "model": {"base_width": 64, "num_steps": 20},
    "training": {"batch_size": 8, "epochs": 1500, "lr": 1e-5},
    "inference": {"batch_size": 8, "mask_divisor": "paper"},
    "evaluation": {
        "fusion_weight": 0.95,
        "box_size": 7,
        "fpr_limit": 0.3,
        "resolution": "model",
        "threshold_quantile": 0.99,
        "pixel_threshold_quantile": 0.999,
    },
    "losses": {"normal_ssim_range": "unit"},
    "data": {"holdout_fraction": 0.1},
    "synthesis": {"foreground": {"mode": "estimate"}},
    "protocol": "paper",
}


def _with(key: str, value):
    params = {k: (dict(v) if isinstance(v, dict) else v) for k, v in GOOD.items()}
    node = params
    *parents, leaf = key.split(".")
    for part in parents:
        node[part] = dict(node[part])
        node = node[part]
    node[leaf] = value
    return params


def test_paper_recipe_is_valid():
    validate_parameters(GOOD)


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("image_size", 100, "multiple of 32"),
        ("image_size", 0, "multiple of 32"),
        ("model.base_width", 48, "multiple of 32"),
        ("training.batch_size", 1, "one anomalous and one normal"),
        ("evaluation.fusion_weight", 1.5, r"in \[0, 1\]"),
        ("evaluation.fusion_weight", -0.1, r"in \[0, 1\]"),
        ("evaluation.box_size", 6, "odd integer"),
        ("evaluation.box_size", 0, "odd integer"),
        ("model.num_steps", 2, ">= 3"),
        ("device", "gpu", "auto, cpu, cuda, cuda:N or mps"),
        ("device", "cuda:x", "auto, cpu, cuda, cuda:N or mps"),
        ("dataset", "mvtec", "mvtec_ad, visa, folder"),
        ("layout", "mvtec3d", "auto, mvtec"),
        ("evaluation.resolution", "full", "model, native"),
        ("synthesis.foreground.mode", "sam", "estimate, folder, none"),
        ("training.lr", 0, "> 0"),
        ("losses.normal_ssim_range", "0-1", "unit, signed"),
        ("protocol", "authors", "default, paper"),
        ("inference.num_steps", 1, "an integer >= 2"),
        ("inference.early_exit", 0, "an integer >= 1"),
        ("training.lr_schedule", "linear", "step, cosine"),
        ("training.warmup_steps", -1, "an integer >= 0"),
        ("training.ema_decay", 1.0, r"a number in \(0, 1\)"),
        ("training.t_sampling", "late", "uniform, opaque, transparent"),
    ],
)
def test_each_rule_names_key_value_and_rule(key, value, rule):
    with pytest.raises(ParameterError, match=rf"'{key}' is {value!r} but must be .*{rule}"):
        validate_parameters(_with(key, value))


def test_more_reverse_calls_than_steps_is_refused():
    with pytest.raises(ParameterError, match=r"'inference.num_steps' is 19 .* <= 18"):
        validate_parameters(_with("inference.num_steps", 19))
    validate_parameters(_with("inference.num_steps", 18))


def test_all_problems_are_listed_at_once():
    params = _with("image_size", 100)
    params["training"]["batch_size"] = 1
    with pytest.raises(ParameterError) as error:
        validate_parameters(params)
    assert "image_size" in str(error.value) and "training.batch_size" in str(error.value)


def _conf(tmp_path, base: str, quick: str = ""):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "parameters.yml").write_text(base)
    (tmp_path / "base" / "catalog.yml").write_text("x:\n  root: ${runtime_params:data_root, a}\n")
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "parameters.yml").write_text(quick)
    return tmp_path


def test_a_misspelt_runtime_key_is_refused_with_the_closest_valid_key(tmp_path):
    conf = _conf(tmp_path, "training:\n  epochs: 3\n  lr: 0.1\nseed: 3\n")
    with pytest.raises(ParameterError) as error:
        check_parameter_keys(conf, ["quick"], {"trainig": {"epochs": 5}, "seed": 1})
    assert "unknown parameter trainig.epochs: did you mean training.epochs?" in str(error.value)
    assert "seed" not in str(error.value).split("\n", 1)[1]


def test_dotted_runtime_keys_and_runtime_only_names_are_known(tmp_path):
    conf = _conf(tmp_path, "training:\n  epochs: 3\n")
    check_parameter_keys(conf, ["quick"], {"training.epochs": 5, "data_root": "/x"})


def test_a_misspelt_key_in_an_environment_file_is_refused_naming_the_file(tmp_path):
    conf = _conf(tmp_path, "evaluation:\n  box_size: 7\n", "evaluation:\n  box_sise: 5\n")
    with pytest.raises(ParameterError) as error:
        check_parameter_keys(conf, ["quick"], None)
    message = str(error.value)
    assert "unknown parameter evaluation.box_sise: did you mean evaluation.box_size?" in message
    assert str(conf / "quick" / "parameters.yml") in message


def test_a_key_with_no_close_match_says_so(tmp_path):
    conf = _conf(tmp_path, "seed: 3\n")
    with pytest.raises(ParameterError, match="unknown parameter zzz_qqq: no parameter has"):
        check_parameter_keys(conf, [], {"zzz_qqq": 1})


@pytest.mark.parametrize("env", [None, "quick", "fast", "paper"])
def test_every_shipped_environment_passes_the_rules(project_root, env):
    validate_parameters(project_parameters(project_root, env))


def test_the_project_configuration_has_no_unknown_key(project_root):
    conf = project_root / "conf"
    envs = [path.name for path in conf.iterdir() if path.is_dir() and path.name != "base"]
    check_parameter_keys(conf, envs, None)
