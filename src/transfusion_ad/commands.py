"""The ``transfusion-ad`` command. ``sweep``: every category, one Ray task each; ``predict``:
score image files with a category's model (exit code 3 when any image is anomalous).

Examples::

    transfusion-ad predict --env quick --category fryum part_0001.png line_images/ --csv s.csv
    transfusion-ad predict --bundle model_bundle.pt --threshold 0.42 images/

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

from transfusion_ad.core.bundle import save_bundle
from transfusion_ad.core.detector import TransFusionDetector
from transfusion_ad.core.device import prepare_cpu
from transfusion_ad.serving import score_files
from transfusion_ad.serving.onnx_export import FORMATS, SPEC_FILE, export_model
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
            "Run the train_eval pipeline once per category (and seed) as Ray tasks, then write "
            "data/08_reporting/<dataset>/summaries/<sweep id>/summary.{csv,md} and log them to "
            "a parent MLflow run."
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
        "--seeds",
        type=_seed_list,
        help="comma-separated seeds, e.g. 0,1,2: every (category, seed) is its own task, with "
        "outputs under <category>/seed<N>/; the summary gives mean ± std over the seeds",
    )
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
        help="where sweep_state.json and summaries/<sweep id>/summary.{csv,md} go (default: "
        "data/08_reporting/<dataset>, relative to the project)",
    )
    _add_predict(commands)
    _add_export(commands)
    _add_app(commands)
    _add_import_authors(commands)
    return parser


def _add_import_authors(commands: argparse._SubParsersAction) -> None:
    imported = commands.add_parser(
        "import-authors",
        help="turn the authors' released weights ({category}_model.pkl) into a model bundle",
        description=(
            "Convert a state dict written by the authors' code (their released weights, RGB "
            "mode) into a model bundle with their recipe and scoring: to --out, or as the "
            "category's model in this project, which the evaluation and predict then use."
        ),
    )
    imported.add_argument("--weights", type=Path, required=True, help="their {category}_model.pkl")
    imported.add_argument("--dataset", choices=DATASETS, required=True)
    imported.add_argument("--category", required=True)
    imported.add_argument("--image-size", type=int, default=256, help="default 256 (the paper)")
    imported.add_argument("--out", type=Path, help="bundle file to write (default: the project)")
    imported.add_argument("--env", help="Kedro configuration environment, as kedro run --env")
    imported.add_argument(
        "--project-path", type=Path, default=Path.cwd(), help="the Kedro project (default: .)"
    )


def _import_authors(args: argparse.Namespace) -> int:
    from kedro.io.core import generate_timestamp

    from transfusion_ad.core.authors_weights import bundle_from_authors

    bundle = bundle_from_authors(args.weights, args.image_size)
    target = args.out
    if target is None:
        folder = score_files.catalog_path(
            args.project_path, args.env, args.dataset, args.category, "model_checkpoint"
        )
        target = folder / generate_timestamp() / folder.name
    save_bundle(bundle, target)
    recipe = ", ".join(f"{key} {value}" for key, value in bundle["recipe"].items())
    print(f"wrote {target} ({recipe})")
    return EXIT_OK


def _add_app(commands: argparse._SubParsersAction) -> None:
    app = commands.add_parser(
        "app",
        help="a review page (Gradio, extra 'app'): drop an image, see score, verdict and map",
        description=(
            "Serve a page where a person drops images of parts and sees the score, the "
            "verdict, the anomaly map over the image and the mask at the threshold, beside "
            "the last evaluation's best and worst images. Binds 127.0.0.1 unless --host."
        ),
    )
    _add_model_source(app, "used")
    app.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    app.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    app.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def _app(args: argparse.Namespace) -> int:
    try:
        from transfusion_ad.serving import review_app
    except ImportError as error:
        raise ParameterError(
            f"the review page needs Gradio ({error}): pip install -e '.[app]'"
        ) from error
    bundle = _bundle_of(args)
    figures = None
    if args.category is not None:
        figures = score_files.catalog_path(
            args.project_path, args.env, args.dataset, args.category, "evaluation_figures"
        )
    detector = TransFusionDetector.load(bundle, device=args.device)
    title = f"TransFusion review: {args.category or bundle}"
    review_app.serve(detector, figures, title, args.host, args.port)
    return EXIT_OK


def _add_export(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="write a category's network as ONNX or TorchScript, with transfusion.json",
        description=(
            "Export the network of the category's latest model bundle (or --bundle PATH) to "
            "--out, with transfusion.json: preprocessing, the reverse loop's constants, fusion "
            "and thresholds. `transfusion-ad predict --onnx DIR` scores with it."
        ),
    )
    _add_model_source(export, "exported")
    export.add_argument("--format", choices=FORMATS, default="onnx")
    export.add_argument("--out", type=Path, required=True, help="folder to write into")


def _add_model_source(parser: argparse.ArgumentParser, verb: str) -> None:
    """--category/--dataset/--env/--project-path (the project's latest bundle) or --bundle."""
    parser.add_argument("--category", help=f"the category whose latest model is {verb}")
    parser.add_argument("--dataset", choices=DATASETS, help="default: the env's default_dataset")
    parser.add_argument("--env", help="Kedro configuration environment, as kedro run --env")
    parser.add_argument("--bundle", type=Path, help="a model bundle file instead")
    parser.add_argument(
        "--project-path", type=Path, default=Path.cwd(), help="the Kedro project (default: .)"
    )


def _bundle_of(args: argparse.Namespace) -> Path:
    """--bundle, or the latest model bundle of --category in the project."""
    if args.bundle is not None:
        return args.bundle
    if args.category is None:
        raise ParameterError("give --category (the project's latest model) or --bundle PATH.")
    return score_files.latest_bundle(args.project_path, args.env, args.dataset, args.category)


def _export(args: argparse.Namespace) -> int:
    network = export_model(_bundle_of(args), args.out, args.format)
    print(f"wrote {network} and {network.with_name(SPEC_FILE)}")
    return EXIT_OK


def _add_predict(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict",
        help="score image files with a category's model; exit code 3 if any is anomalous",
        description=(
            "Score images (files or folders) with the category's latest model bundle in this "
            "Kedro project, or --bundle PATH, or an ONNX export (--onnx DIR). Prints one line "
            "per image (path, score, good/anomalous). Exit code 0, 3 when any image is "
            "anomalous, 2 for bad input."
        ),
    )
    predict.add_argument("images", nargs="+", help="image files and folders of images")
    _add_model_source(predict, "used")
    predict.add_argument("--onnx", type=Path, help="a folder written by transfusion-ad export")
    predict.add_argument("--csv", type=Path, help="write image,score,anomalous,error rows here")
    predict.add_argument("--overlays", type=Path, help="write a heat-map overlay per image here")
    predict.add_argument("--threshold", type=float, help="image threshold for this run")
    predict.add_argument(
        "--params",
        help="thresholds for this run, as kedro run --params: "
        "'thresholds.image=0.42,thresholds.pixel=0.5'",
    )
    predict.add_argument("--batch-size", type=int, default=8, help="images per network call")
    predict.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def _threshold_params(text: str | None, image: float | None) -> dict[str, float | None]:
    """--params thresholds.image=..,thresholds.pixel=.. and --threshold, as override values."""
    overrides: dict[str, float | None] = {"image": None, "pixel": None}
    for key, value in parse_runtime_params(text).items() if text else ():
        if key != "thresholds" or not isinstance(value, dict) or set(value) - set(overrides):
            raise ParameterError(
                f"predict --params takes thresholds.image and thresholds.pixel only, got {key}."
            )
        overrides.update({name: float(number) for name, number in value.items()})
    if image is not None:
        overrides["image"] = image
    return overrides


def _predict(args: argparse.Namespace) -> int:
    overrides = _threshold_params(args.params, args.threshold)
    files = score_files.expand_inputs(args.images)
    if args.onnx is not None:
        from transfusion_ad.serving.onnx_runner import OnnxDetector

        scorer, source = OnnxDetector.load(args.onnx), str(args.onnx)
    else:
        bundle = _bundle_of(args)
        scorer, source = TransFusionDetector.load(bundle, device=args.device), str(bundle)
    thresholds = score_files.apply_threshold(scorer, **overrides)
    print(f"model: {source}; image threshold {thresholds['image']:.6f}", file=sys.stderr)
    rows = score_files.score_files(scorer, files, args.batch_size)
    if args.csv is not None:
        score_files.write_csv(rows, args.csv)
        score_files.write_sidecar(args.csv, source, thresholds)
    if args.overlays is not None:
        score_files.write_overlays(rows, args.overlays, thresholds.get("pixel"))
    return score_files.report(rows)


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
        seeds=args.seeds,
    )


def _seed_list(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` -> (0, 1, 2), each seed once, in the order given."""
    try:
        seeds = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds {text!r}: give comma-separated integers, e.g. 0,1,2"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds needs at least one seed, e.g. 0,1,2")
    return tuple(dict.fromkeys(seeds))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. sweep: 0 when every category is done, 1 when some failed, 2 for bad input;
    predict: 0, 3 when any image is anomalous, 2 for bad input."""
    args = build_parser().parse_args(argv)
    runs = {"predict": _predict, "export": _export, "app": _app, "import-authors": _import_authors}
    if args.command in runs:
        run = runs[args.command]
        prepare_cpu()
        try:
            return run(args)
        except (ParameterError, SweepError, FileNotFoundError, ValueError) as error:
            print(f"transfusion-ad {args.command}: error: {error}", file=sys.stderr)
            return EXIT_USAGE
    try:
        state = run_sweep(_sweep_config(args))
    except (SweepError, ParameterError) as error:
        print(f"transfusion-ad sweep: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(state.report())
    return EXIT_FAILED_CATEGORIES if state.unfinished() else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
