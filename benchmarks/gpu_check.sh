#!/usr/bin/env bash
# GPU check: the GPU-only tests, then benchmarks/bench_gpu.py (training images/s, peak memory and detector
# inference images/s of the spr, ncsnpp and ddad networks at paper resolution), appended to
# benchmarks/RESULTS.md with the device name. One prepared script for one data-centre GPU, 8 minutes at most:
# every step runs under `timeout`, cut to what is left of BUDGET (450 s; each step may overrun by the 10 s
# of timeout's --kill-after). Whenever a GPU is at hand, run it and commit what it appended. CI never runs it.
#
#   bash benchmarks/gpu_check.sh                 # the whole check
#   bash benchmarks/gpu_check.sh --collect-only  # only list the GPU-only tests it would run (works anywhere)
#
# Environment (all optional):
#   PYTHON      interpreter (default: the first of .venv/bin/python, python3, python whose torch sees CUDA)
#   WHEELS      folder of wheels installed first, offline and without dependencies (the GPU machine may have no
#               internet; e.g. mlxtend, which tests/conftest.py needs through scoreviz.data)
#   RESULTS     file the table is appended to (default benchmarks/RESULTS.md)
#   BENCH_ARGS  arguments of bench_gpu (default "--device cuda"; e.g. "--device cpu --quick" for a dry run)
#   COPY_TO     folder the logs and RESULTS file are copied to at the end (default $OUT when that is a folder)
#   BUDGET, T_TESTS, T_BENCH   seconds: whole run (450), test step (170), benchmark step (220)
#
# The GPU-only tests: those whose name contains "cuda" (pytest -k cuda) in the test files that mention CUDA;
# each skips itself without a GPU. They cover bf16 autocast, channels_last, fused AdamW (train()'s CUDA
# defaults), torch.compile, DDP with one process (tests/test_bench_gpu.py) and the baselines on CUDA
# (tests/test_baselines.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
START=$SECONDS
BUDGET=${BUDGET:-450}
T_TESTS=${T_TESTS:-170}
T_BENCH=${T_BENCH:-220}
RESULTS=${RESULTS:-benchmarks/RESULTS.md}
BENCH_ARGS=${BENCH_ARGS:---device cuda}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"   # scoreviz and benchmarks import from the checkout
export PYTHONUNBUFFERED=1
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
K_EXPR=cuda
mapfile -t TEST_FILES < <(grep -l -i cuda tests/test_*.py)

left() { echo $((BUDGET - (SECONDS - START))); }
# step MAX CMD...: CMD under timeout, at most MAX seconds and never past BUDGET
step() {
    local max=$1 l
    shift
    l=$(left)
    ((l < max)) && max=$l
    if ((max < 10)); then
        echo "gpu_check: no time left (budget ${BUDGET} s) for: $*"
        return 124
    fi
    timeout --kill-after=10 "$max" "$@"
}

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        echo "$PYTHON"
        return
    fi
    local c first=""
    for c in .venv/bin/python python3 python; do
        command -v "$c" >/dev/null 2>&1 || continue
        if timeout 60 "$c" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)" 2>/dev/null; then
            echo "$c"
            return
        fi
        [[ -z "$first" ]] && first=$c
    done
    echo "${first:-python3}"
}

PY=$(pick_python)

if [[ "${1:-}" == "--collect-only" ]]; then
    exec "$PY" -m pytest "${TEST_FILES[@]}" -k "$K_EXPR" --collect-only -q -p no:cacheprovider
fi

echo "== GPU check $(date '+%Y-%m-%d %H:%M'), $ROOT, python: $PY"
if command -v nvidia-smi >/dev/null 2>&1; then
    timeout 10 nvidia-smi -L || echo "gpu_check: nvidia-smi -L failed"
else
    echo "gpu_check: nvidia-smi not found"
fi

# -- environment: torch, scoreviz's imports, pytest (the GPU machine may be offline: say what is missing)
if [[ -n "${WHEELS:-}" ]] && compgen -G "$WHEELS/*.whl" >/dev/null; then
    echo "gpu_check: installing the wheels in $WHEELS (offline, no dependencies)"
    step 180 "$PY" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl || echo "gpu_check: ERROR: installing $WHEELS failed"
fi
if ! step 60 "$PY" -c "import torch" 2>/dev/null; then
    echo "gpu_check: torch does not import with $PY; trying pip install torch==2.13.0"
    step 240 "$PY" -m pip install -q --retries 0 --timeout 15 "torch==2.13.0" ||
        echo "gpu_check: ERROR: could not install torch (no internet on this machine?): set PYTHON to an" \
            "interpreter that has a CUDA build of torch"
fi
if ! step 60 "$PY" -c "import scoreviz.methods, scoreviz.configs, scoreviz.train" 2>"$LOGS/import.err"; then
    echo "gpu_check: scoreviz does not import ($(tail -n 1 "$LOGS/import.err")); trying pip install -e ."
    step 240 "$PY" -m pip install -q --retries 0 --timeout 15 -e . ||
        echo "gpu_check: ERROR: pip install -e . failed (no internet on this machine?); carry the missing" \
            "packages as wheels in WHEELS=<folder>; the steps below will record the failures"
fi
PYTEST_EXTRA=()
if ! step 60 "$PY" -c "import scoreviz.data" 2>"$LOGS/import.err"; then
    # tests/conftest.py imports scoreviz.data (mlxtend, scikit-image): without it pytest would run no test at all
    echo "gpu_check: WARNING: scoreviz.data does not import ($(tail -n 1 "$LOGS/import.err")): running pytest with" \
        "--noconftest; test files that import scoreviz.data (test_baselines.py: test_cuda_matches_cpu) fail to" \
        "collect. Carry the missing packages as wheels in WHEELS=<folder> (e.g. mlxtend, pure Python)"
    PYTEST_EXTRA+=(--noconftest)
fi
if ! step 60 "$PY" -m pytest --version >/dev/null 2>&1; then
    step 120 "$PY" -m pip install -q --retries 0 --timeout 15 pytest ||
        echo "gpu_check: ERROR: pytest is missing and could not be installed"
fi
step 60 "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'available:', torch.cuda.is_available(), *(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))" ||
    true
DEVICE=$(step 60 "$PY" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')" \
    2>/dev/null || echo "unknown device")

# -- the GPU-only tests
echo "== GPU-only tests: pytest -k $K_EXPR ${TEST_FILES[*]}"
set +e
step "$T_TESTS" "$PY" -m pytest "${TEST_FILES[@]}" -k "$K_EXPR" -p no:cacheprovider --continue-on-collection-errors \
    "${PYTEST_EXTRA[@]}" -q -rA 2>&1 | tee "$LOGS/tests.log"
RC_TESTS=${PIPESTATUS[0]}
set -e
SUM_TESTS=$(grep -E '(passed|failed|errors?|skipped|deselected|no tests ran).* in [0-9.]+s' "$LOGS/tests.log" |
    tail -n 1 | sed -E 's/^=+ //; s/ =+$//' || true)
SUM_TESTS=${SUM_TESTS:-no pytest summary line: $(tail -n 1 "$LOGS/tests.log")}
[[ $RC_TESTS -eq 124 || $RC_TESTS -eq 137 ]] &&
    SUM_TESTS="stopped at its limit (T_TESTS=${T_TESTS} s or what was left of BUDGET=${BUDGET} s); ${SUM_TESTS}"
[[ "$DEVICE" == "no CUDA device" ]] && SUM_TESTS="$SUM_TESTS (no CUDA device: the GPU-only tests skip themselves)"

# -- the benchmark (its own budget ends 60 s before the step's timeout so that the table is written)
echo "== benchmark: python -m benchmarks.bench_gpu $BENCH_ARGS --out $RESULTS"
L=$(left)
TB=$((T_BENCH < L ? T_BENCH : L))
set +e
# shellcheck disable=SC2086  # BENCH_ARGS is a list of words
step "$TB" "$PY" -m benchmarks.bench_gpu $BENCH_ARGS --out "$RESULTS" --budget-s $((TB > 90 ? TB - 60 : 30)) 2>&1 |
    tee "$LOGS/bench.log"
RC_BENCH=${PIPESTATUS[0]}
set -e
SUM_BENCH=$(grep -E '^bench_gpu: ' "$LOGS/bench.log" | tail -n 1 | sed 's/^bench_gpu: //' || true)
[[ $RC_BENCH -eq 124 || $RC_BENCH -eq 137 ]] &&
    SUM_BENCH="not run or stopped at its limit (${TB} s left of BUDGET=${BUDGET} s), nothing appended"
[[ -z "$SUM_BENCH" ]] && SUM_BENCH="failed (rc $RC_BENCH): $(tail -n 1 "$LOGS/bench.log")"

COPY_TO=${COPY_TO:-${OUT:-}}
if [[ -n "$COPY_TO" && -d "$COPY_TO" ]]; then
    { cp "$LOGS/tests.log" "$LOGS/bench.log" "$COPY_TO/" && { [[ ! -f "$RESULTS" ]] || cp "$RESULTS" "$COPY_TO/"; }; } ||
        echo "gpu_check: could not copy the logs to $COPY_TO"
fi
STATUS=ok
[[ $RC_TESTS -ne 0 || $RC_BENCH -ne 0 ]] && STATUS=FAILED
grep -q "^appended .* rows to " "$LOGS/bench.log" && echo "gpu_check: appended to $RESULTS: commit it"
echo "GPU check $STATUS on $DEVICE in $((SECONDS - START)) s: tests: ${SUM_TESTS} (rc $RC_TESTS);" \
    "bench: ${SUM_BENCH} (rc $RC_BENCH); logs in $LOGS"
[[ $STATUS == ok ]]
