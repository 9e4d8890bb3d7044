#!/usr/bin/env bash
# One GPU session's checks, in one go (a lent GPU machine is held for minutes, not hours):
#   1. benchmarks/run.py: every backend, the CUDA rows included, on an idle GPU, for the
#      default weights and the shipped ensemble (BENCH=0 skips);
#   2. up to four trainings side by side on the one GPU, one per line of RUNS_FILE
#      ("NAME CONFIG [--set SECTION.KEY=VALUE ...]"; default configs/gpu_runs/widths.txt:
#      the shipped recipe with 0006R0 held out and on every frame, at base 16 and 24),
#      the CUDA tests of tests/model running beside them on the CPU cores left (TESTS=0 skips);
#   3. one tar per run (averaged weights + JSON + training state) and one of the logs in OUT.
# Usage (repository root, ../shared/data or $DRIVINGSEG_DATA holding camvid/ and kitti_raw/;
# CamVid may be a JPEG copy of the images beside the PNG labels, to carry less: build it and
# the missing wheels with `bash scripts/gpu_prepare.sh`, KITTI=1 when BENCH runs):
#   OUT=/tmp/gpu TIME_MIN=6 bash scripts/gpu_check.sh [RUNS_FILE]
# A dry run on a CPU machine: EXTRA_SETS="train.device=cpu train.amp=false" TIME_MIN=0.2
# Session 6 ran widths.txt on an H200 with TIME_MIN=6 (7 min in all; docs/MODEL.md,
# PERFORMANCE_H200.md); session 7 configs/gpu_runs/copy_paste.txt with BENCH=0 TESTS=0.
# Score the runs afterwards where the original CamVid PNGs are:
#   drivingseg eval --data ../shared/data/camvid/train --sequences 0006R0 --weights RUN/averaged
set -u
OUT=${OUT:-/tmp/gpu_check}
TIME_MIN=${TIME_MIN:-6}
RUNS_FILE=${1:-configs/gpu_runs/widths.txt}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT/logs" runs
if [ -n "${DRIVINGSEG_DATA:-}" ] && [ ! -e ../shared/data ]; then
    mkdir -p ../shared && ln -s "$(realpath "$DRIVINGSEG_DATA")" ../shared/data
fi
export DRIVINGSEG_DATA=${DRIVINGSEG_DATA:-../shared/data}
# Fail in seconds, not after the 75 s start check, when a dependency is missing there
# (the device's plain `pip` installs elsewhere: `python3 -m pip install --no-deps .whl/*.whl`).
if ! $PY -c "import drivingseg.cli.main, drivingseg.model.train" 2> "$OUT/logs/import.log"; then
    tail -3 "$OUT/logs/import.log"; echo "drivingseg does not import here; install its wheels first"
    exit 3
fi

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
  nproc; } 2>&1 | tee "$OUT/logs/machine.txt"

if [ "${BENCH:-1}" != 0 ]; then
    echo "== benchmarks/run.py (idle GPU)"
    timeout 120 $PY benchmarks/run.py --no-compile --runs 10 --json "$OUT/logs/bench.json" \
        --markdown "$OUT/logs/PERFORMANCE_gpu.md" > "$OUT/logs/bench.log" 2>&1
    echo "bench rc=$?"; cat "$OUT/logs/bench.log"
    timeout 150 $PY benchmarks/run.py --no-compile --runs 10 --weights ensemble \
        --json "$OUT/logs/bench_ensemble.json" > "$OUT/logs/bench_ensemble.log" 2>&1
    echo "bench ensemble rc=$?"; grep -E "fps" "$OUT/logs/bench_ensemble.log"
fi

echo "== trainings, ${TIME_MIN} min each, side by side"
declare -A RUNS=()
while read -r name args; do
    case "$name" in ''|'#'*) continue ;; esac
    for kv in ${EXTRA_SETS:-}; do args="$args --set $kv"; done
    RUNS[$name]="$args"
done < "$RUNS_FILE"
pids=()
for name in "${!RUNS[@]}"; do
    # shellcheck disable=SC2086  # the value holds the config and its --set options
    timeout "$(awk "BEGIN {print int($TIME_MIN * 60 + 150)}")" $PY -m drivingseg train --config ${RUNS[$name]} \
        --time-limit-min "$TIME_MIN" --out-dir "runs/gpu_$name" > "$OUT/logs/train_$name.log" 2>&1 &
    pids+=($!)
done
sleep 75
alive=0
for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
echo "trainings alive after 75 s: $alive of ${#pids[@]}"
for name in "${!RUNS[@]}"; do tail -c 600 "$OUT/logs/train_$name.log" | tr '\r' '\n' | tail -3; done
# none alive: every run crashed (or, on a CPU dry run, already finished): no tests beside them
if [ "${TESTS:-1}" != 0 ] && [ "$alive" -gt 0 ]; then
    echo "== CUDA tests beside the trainings"
    DRIVINGSEG_DATA=/nonexistent timeout 240 $PY -m pytest -q -p no:cacheprovider \
        tests/model/test_infer.py tests/model/test_backends.py tests/model/test_unet.py \
        > "$OUT/logs/pytest_cuda.log" 2>&1
    echo "pytest rc=$?"; tail -5 "$OUT/logs/pytest_cuda.log"
fi
wait
for name in "${!RUNS[@]}"; do
    echo "== $name"; tr '\r' '\n' < "$OUT/logs/train_$name.log" | grep -E "INFO|Error|error" | tail -4
    dir="runs/gpu_$name"
    [ -f "$dir/averaged.safetensors" ] || continue
    if [ "$(stat -c %s "$dir/averaged.safetensors")" -gt 15000000 ]; then  # tars <= 16 MB
        $PY -c "import sys; from drivingseg.model.checkpoint import load_checkpoint, save_checkpoint
c = load_checkpoint(sys.argv[1]); save_checkpoint(sys.argv[1], c.model, c.config, c.spec, c.notes, half=True)" \
            "$dir/averaged"
    fi
    cp "$dir/last.state.json" "$OUT/logs/${name}_state.json" 2>/dev/null
    tar -C runs -cf "$OUT/$name.tar" "gpu_$name/averaged.safetensors" "gpu_$name/averaged.json"
done
tar -C "$OUT" -cf "$OUT/logs.tar" logs
ls -la "$OUT"
