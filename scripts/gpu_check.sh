#!/usr/bin/env bash
# One-GPU check of del: CUDA tests, bf16 training speed and memory, inference, feature
# extraction, `del predict` real-time factor, ONNX Runtime's CUDA provider.
#
#   scripts/gpu_check.sh              # on a machine with one NVIDIA GPU, < 10 min
#   scripts/gpu_check.sh --dry-run    # list the steps and their commands (any machine)
#
# Every step runs under its own time limit; a failing step is reported and the next
# one runs. Each step's output goes to $WORK/<step>.log; one table at the end gives
# every step's status, seconds and result line. Environment: PYTHON (default
# python), WORK (default data/gpu-check), DEVICE (default cuda).
set -u -o pipefail

PYTHON=${PYTHON:-python}
WORK=${WORK:-data/gpu-check}
DEVICE=${DEVICE:-cuda}
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$arg' (use --dry-run or --help)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.." || exit 2
VIDEO="$WORK/video-600s-720p.mp4"

# name | time limit (s) | command. A command's last output line is its result; the limits
# add up to under 10 minutes.
STEPS=(
  "cuda tests|45|$PYTHON -m pytest -q -p no:cacheprovider -m cuda tests"
  "train bf16 UnAV-100 d512 b16 + THUMOS14|120|$PYTHON scripts/bench_model.py --device $DEVICE --dtype bf16 --batch 16 --dim 512 --settings 'full DEL' --repeats 5 --threads 4"
  "test video 600 s 1280x720 30 fps|75|$PYTHON scripts/bench_predict.py --make-video $VIDEO --seconds 600 --size 1280x720 --fps 30"
  "extract basic|45|$PYTHON scripts/bench_predict.py --rate $VIDEO basic --device $DEVICE"
  "extract vggish|45|$PYTHON scripts/bench_predict.py --rate $VIDEO vggish --device $DEVICE"
  "extract i3d|60|$PYTHON scripts/bench_predict.py --rate $VIDEO i3d --device $DEVICE"
  "del predict demo, 600 s 720p|60|$PYTHON scripts/bench_predict.py --rate $VIDEO predict --device $DEVICE"
  "onnxruntime CUDA provider, UnAV-100|120|$PYTHON scripts/bench_export.py --provider cuda --geometries unav100 --repeats 5"
)

if [ "$DRY_RUN" = 1 ]; then
  echo "gpu_check.sh would run, in $PWD, writing logs to $WORK/:"
  for step in "${STEPS[@]}"; do
    IFS='|' read -r name limit command <<<"$step"
    printf '  %-42s (≤ %4s s)  %s\n' "$name" "$limit" "$command"
  done
  total=0
  for step in "${STEPS[@]}"; do IFS='|' read -r _ limit _ <<<"$step"; total=$((total + limit)); done
  echo "at most $total s in all"
  exit 0
fi

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
mkdir -p "$WORK"
results=()
failed=0
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit command <<<"$step"
  log="$WORK/$(echo "$name" | tr -c 'A-Za-z0-9\n' '-' | cut -c1-40).log"
  echo "== $name: $command" >&2
  started=$(date +%s)
  timeout "$limit" bash -c "$command" >"$log" 2>&1
  code=$?
  seconds=$(($(date +%s) - started))
  case $code in 0) status=ok ;; 124) status="timeout" ;; *) status="exit $code" ;; esac
  [ $code = 0 ] || failed=$((failed + 1))
  last=$(grep -v '^[[:space:]]*$' "$log" | tail -1 | cut -c1-90)
  results+=("$name|$status|$seconds|$last")
  tail -40 "$log" >&2
done

echo
printf '%-42s | %-8s | %5s | %s\n' "step" "status" "s" "result (last line of the step's log)"
printf '%s\n' "$(printf '%.0s-' {1..120})"
for row in "${results[@]}"; do
  IFS='|' read -r name status seconds last <<<"$row"
  printf '%-42s | %-8s | %5s | %s\n' "$name" "$status" "$seconds" "$last"
done
[ $failed = 0 ] || { echo "$failed step(s) failed; logs in $WORK/" >&2; exit 1; }
