#!/usr/bin/env bash
# The GPU check (issue 20): on a machine with a CUDA GPU, in about 8 minutes, what this project's
# CUDA path does. It writes gpu_check.json and gpu_check.md (and each step's raw output) to the
# output folder:
#   1. the GPU (nvidia-smi, torch);
#   2. the tests marked cuda (tests/test_cuda.py): training, synthesis, reverse process, detector,
#      bf16 and compile;
#   3. benchmarks/run.py at the paper recipe, optimised path, with bf16 and with torch.compile:
#      training step, synthesis per batch, inference per image at batch 1 and 32;
#   4. a short training of the paper recipe (conf/base: 256 px, width 64) on the shipped sample
#      with bf16 and lr 1e-4, whose loss must fall;
#   5. a short train_eval run of conf/fast (the paper network with the short-run schedule of
#      benchmarks/recipe_search.md) on the shipped sample: its metrics and wall time.
#
#   bash benchmarks/gpu_check.sh                 # everything, into ${OUT:-benchmarks/gpu_check}
#   bash benchmarks/gpu_check.sh --dry-run       # print the steps, run nothing (works anywhere)
#   bash benchmarks/gpu_check.sh --out DIR --epochs 20 --skip-compile
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
  echo "options: --out DIR  --epochs N (training, default 30)  --fast-epochs N (conf/fast, default 20)"
  echo "         --skip-compile  --dry-run  --help"
}

out="${OUT:-benchmarks/gpu_check}"
epochs=30
fast_epochs=20
compile=1
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "gpu_check.sh: --out needs a folder" >&2; exit 2; }; out="$2"; shift 2 ;;
    --epochs)
      [ $# -ge 2 ] && [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "gpu_check.sh: --epochs needs a positive integer" >&2; exit 2; }
      epochs="$2"; shift 2 ;;
    --fast-epochs)
      [ $# -ge 2 ] && [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "gpu_check.sh: --fast-epochs needs a positive integer" >&2; exit 2; }
      fast_epochs="$2"; shift 2 ;;
    --skip-compile) compile=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    --help|-h) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

python="${PYTHON:-.venv/bin/python}"
export KEDRO_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1
export MLFLOW_TRACKING_URI="sqlite:///$PWD/$out/mlflow.db"
bench=(benchmarks/run.py --device cuda --recipes paper --tasks train,synth,infer --paths optimised --infer-batches 1,32)
train=(.venv/bin/kedro run --pipelines=data_ingestion,anomaly_synthesis,training --params
  "dataset=visa,category=fryum,data_root=data/01_raw/sample,training.epochs=$epochs,training.lr=1e-4,training.bf16=true,training.checkpoint_every=1000,training.progress=false,device=cuda,synthesis.texture_dir=data/01_raw/sample/textures,run_suffix=/gpu_check")
steps=(
  "gpu: nvidia-smi; $python -c 'import torch; print(torch.cuda.get_device_name(0))'"
  "tests: $python -m pytest -q -m cuda tests/test_cuda.py --junitxml=$out/cuda_tests.xml"
  "bench_bf16: $python ${bench[*]} --bf16 --json $out/bench_bf16.json"
)
[ "$compile" = 1 ] && steps+=("bench_compile: $python ${bench[*]} --bf16 --compile --json $out/bench_compile.json")
fast=(.venv/bin/kedro run --env fast --pipelines=train_eval --params
  "dataset=visa,category=fryum,data_root=data/01_raw/sample,training.epochs=$fast_epochs,training.progress=false,synthesis.texture_dir=data/01_raw/sample/textures,run_suffix=/gpu_check_fast")
steps+=("training: ${train[*]}" "fast: ${fast[*]}")

if [ "$dry_run" = 1 ]; then
  printf '%s\n' "${steps[@]}"
  exit 0
fi
if ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check.sh: no CUDA GPU visible to torch (nvidia-smi and CUDA_VISIBLE_DEVICES?): nothing to check" >&2
  exit 2
fi

mkdir -p "$out"
status=0
run_step() {  # name, command...: its output to $out/<name>.log; a failure is recorded, not fatal
  local name="$1"; shift
  local start=$SECONDS
  if "$@" >"$out/$name.log" 2>&1; then echo "ok $name $((SECONDS - start))" >>"$out/steps.txt"
  else echo "failed $name $((SECONDS - start))" >>"$out/steps.txt"; status=1; fi
  tail -n 3 "$out/$name.log"
}
: >"$out/steps.txt"
run_step gpu bash -c "nvidia-smi && $python -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))'"
run_step tests "$python" -m pytest -q -m cuda tests/test_cuda.py --junitxml="$out/cuda_tests.xml"
run_step bench_bf16 "$python" "${bench[@]}" --bf16 --json "$out/bench_bf16.json"
[ "$compile" = 1 ] && run_step bench_compile "$python" "${bench[@]}" --bf16 --compile --json "$out/bench_compile.json"
run_step training "${train[@]}"
cp -f data/08_reporting/visa/fryum/gpu_check/training_history.json "$out/" 2>/dev/null || true
run_step fast "${fast[@]}"
cp -f data/08_reporting/visa/fryum/gpu_check_fast/metrics.json "$out/fast_metrics.json" 2>/dev/null || true
"$python" benchmarks/gpu_summary.py "$out"
exit $status
