"""`transfusion-ad` (commands.py): options map onto a SweepConfig; misuse is refused."""

from pathlib import Path

import pytest

from transfusion_ad.commands import _sweep_config, build_parser


def parse(*args):
    return build_parser().parse_args(["sweep", *args])


def test_options_become_the_sweep_configuration(tmp_path):
    config = _sweep_config(
        parse(
            "--categories", "pcb1,pcb2", "--dataset", "visa", "--env", "cluster",
            "--params", "training.epochs=3", "--gpus-per-task", "0.5", "--cpus-per-task", "4",
            "--address", "auto", "--skip-done", "--project-path", str(tmp_path),
        )
    )  # fmt: skip
    assert config.categories == "pcb1,pcb2" and config.dataset == "visa"
    assert config.env == "cluster" and config.params == {"training": {"epochs": 3}}
    assert config.gpus_per_task == 0.5 and config.cpus_per_task == 4.0
    assert config.address == "auto" and config.skip_done and not config.only_failed
    assert config.project_path == tmp_path


def test_defaults_run_on_one_cpu_per_task_locally_in_the_current_project():
    config = _sweep_config(parse("--only-failed"))
    assert config.categories is None and config.only_failed
    assert config.params is None and config.env is None  # reused from the last sweep
    assert config.gpus_per_task == 0 and config.cpus_per_task == 1
    assert config.address is None and config.project_path == Path.cwd()


@pytest.mark.parametrize(
    "args",
    [
        [],  # neither --categories nor --only-failed
        ["--categories", "all", "--only-failed"],
        ["--categories", "all", "--dataset", "mvtec3d"],
        ["--categories", "all", "--gpus-per-task", "one"],
    ],
)
def test_misuse_exits_with_usage_status(args, capsys):
    with pytest.raises(SystemExit) as raised:
        parse(*args)
    assert raised.value.code == 2
    assert "usage: transfusion-ad sweep" in capsys.readouterr().err
