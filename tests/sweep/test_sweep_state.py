"""The saved sweep state: round trip, what --only-failed re-runs, the printed report."""

import json

from transfusion_ad.sweep import CategoryOutcome, SweepState
from transfusion_ad.sweep.state import parse_task_name, task_name


def make_state():
    return SweepState(
        sweep_id="20260101-000000-abcdef",
        dataset="visa",
        env="quick",
        params={"training": {"epochs": 1}},
        parent_run_id="p1",
        outcomes={
            "pcb1": CategoryOutcome("succeeded", seconds=12.5, run_id="r1"),
            "pcb2": CategoryOutcome("failed", error="DataLayoutError: no 'train/good'"),
            "fryum": CategoryOutcome("skipped"),
            "candle": CategoryOutcome("pending"),
        },
    )


def test_saved_state_loads_back_equal_and_is_plain_json(tmp_path):
    path = tmp_path / "reports" / "sweep_state.json"
    make_state().save(path)
    assert SweepState.load(path) == make_state()
    assert json.loads(path.read_text())["outcomes"]["pcb2"]["status"] == "failed"
    assert [p.name for p in path.parent.iterdir()] == ["sweep_state.json"]  # no temporary left


def test_no_saved_state_loads_as_none(tmp_path):
    assert SweepState.load(tmp_path / "sweep_state.json") is None


def test_unfinished_are_the_failed_and_the_interrupted_in_sweep_order():
    assert make_state().unfinished() == ["pcb2", "candle"]
    assert make_state().categories("skipped") == ["fryum"]


def test_report_lists_each_status_and_each_error():
    report = make_state().report()
    assert "succeeded (1): pcb1" in report
    assert "skipped (1): fryum" in report
    assert "failed (1): pcb2" in report
    assert "pcb2: DataLayoutError: no 'train/good'" in report
    assert "pending (1): candle" in report


def test_task_names_carry_the_seed_and_parse_back():
    assert task_name("pcb1", None) == "pcb1"
    assert task_name("pcb1", 2) == "pcb1/seed2"
    assert parse_task_name("pcb1/seed2") == ("pcb1", 2)
    assert parse_task_name("pcb1") == ("pcb1", None)
    assert parse_task_name("my/seedling") == ("my/seedling", None)


def test_a_state_written_before_seeds_loads(tmp_path):
    path = tmp_path / "sweep_state.json"
    make_state().save(path)
    data = json.loads(path.read_text())
    del data["seeds"], data["summary_dir"]
    path.write_text(json.dumps(data))
    assert SweepState.load(path) == make_state()
