"""The ``transfusion-ad`` command. ``transfusion-ad sweep``: every category, one Ray task each.

Examples::

    transfusion-ad sweep --dataset mvtec_ad --categories all --gpus-per-task 1
    transfusion-ad sweep --dataset visa --categories pcb1,pcb2 --address auto --env cluster
    transfusion-ad sweep --dataset mvtec_ad --only-failed
    transfusion-ad sweep --dataset folder --categories all --params data_root=/data/parts \\
        --gpus-per-task 0 --env quick
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from transfusion_ad.sweep import SweepConfig, SweepError, parse_runtime_params, run_sweep
from transfusion_ad.validation import DATASETS, ParameterError

EXIT_OK, EXIT_FAILED_CATEGORIES, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``transfusion-ad`` and its ``sweep`` subcommand."""
    parser = argparse.ArgumentParser(
        prog="transfusion-ad", description="TransFusion anomaly detection: project commands."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser(
        "sweep",
        help="train and evaluate many categories, one Ray task (one Kedro run) each",
        description=(
            "Run the train_eval pipeline once per category as Ray tasks, then write "
            "data/08_reporting/<dataset>/summary.{csv,md} and log them to a parent MLflow run."
        ),
    )
    which = sweep.add_mutually_exclusive_group(required=True)
    which.add_argument("--categories", help="'all' or a comma-separated list, e.g. pcb1,pcb2")
    which.add_argument(
        "--only-failed",
        action="store_true",
        help="re-run the failed (or interrupted) categories of the last sweep of the dataset, "
        "with its --env and --params unless given",
    )
    sweep.add_argument(
        "--dataset", choices=DATASETS, help="default: the environment's default_dataset"
    )
    sweep.add_argument("--env", help="Kedro configuration environment (conf/<env>)")
    sweep.add_argument(
        "--params",
        help="runtime parameters for every category, as kedro run --params: "
        "'training.epochs=1,image_size=32'",
    )
    sweep.add_argument(
        "--gpus-per-task",
        type=float,
        default=0.0,
        help="GPUs per category (Ray num_gpus; fractions share a GPU); 0 runs on the CPU",
    )
    sweep.add_argument(
        "--cpus-per-task",
        type=float,
        default=1.0,
        help="CPUs per category (Ray num_cpus); also the task's torch threads (default 1)",
    )
    sweep.add_argument(
        "--address", help="Ray cluster to join ('auto', or ray://head:10001); default: local"
    )
    sweep.add_argument("--num-cpus", type=int, help="CPUs of a local Ray instance (default: all)")
    sweep.add_argument("--num-gpus", type=int, help="GPUs of a local Ray instance (default: all)")
    sweep.add_argument(
        "--dashboard", action="store_true", help="start the Ray dashboard with a local instance"
    )
    sweep.add_argument(
        "--skip-done", action="store_true", help="skip categories whose metrics.json exists"
    )
    sweep.add_argument(
        "--max-retries",
        type=int,
        default=1,
        help="times Ray re-runs a category whose worker or node died (default 1); "
        "training resumes from its last checkpoint",
    )
    sweep.add_argument(
        "--project-path", type=Path, default=Path.cwd(), help="the Kedro project (default: .)"
    )
    sweep.add_argument(
        "--output-dir",
        type=Path,
        help="where summary.{csv,md} and sweep_state.json go (default: "
        "data/08_reporting/<dataset>, relative to the project)",
    )
    return parser


def _sweep_config(args: argparse.Namespace) -> SweepConfig:
    return SweepConfig(
        project_path=args.project_path,
        categories=args.categories,
        dataset=args.dataset,
        env=args.env,
        params=None if args.params is None else parse_runtime_params(args.params),
        gpus_per_task=args.gpus_per_task,
        cpus_per_task=args.cpus_per_task,
        address=args.address,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        dashboard=args.dashboard,
        skip_done=args.skip_done,
        only_failed=args.only_failed,
        output_dir=args.output_dir,
        max_retries=args.max_retries,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; 0 when every category is done, 1 when some failed, 2 for bad input."""
    args = build_parser().parse_args(argv)
    try:
        state = run_sweep(_sweep_config(args))
    except (SweepError, ParameterError) as error:
        print(f"transfusion-ad sweep: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(state.report())
    return EXIT_FAILED_CATEGORIES if state.unfinished() else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
