#!/usr/bin/env bash
# GPU check of ct3d on a GPU machine. TensorFlow backend (default): a fresh machine with
# Python >= 3.10 and an NVIDIA driver; makes a virtual environment and installs ct3d with its
# `gpu` extra (tensorflow[and-cuda]). JAX or PyTorch backend (--backend jax|torch): a machine
# whose Python already has JAX or PyTorch with CUDA; the virtual environment sees that Python's
# packages, and the rest comes from PyPI or, offline, from the wheels of
# benchmarks/offline-wheels.txt (27 MiB; no TensorFlow). Then it shows the GPU and runs
# benchmarks/gpu_check.py (epoch times of the thesis and baseline
# models in float32 / mixed_float16, without / with XLA; GPU memory peak; input-only rate; one
# thesis-grid scenario report) and writes benchmarks/results/gpu_check-<device>-<date>.json.
#
# Run from the repository root:
#   bash benchmarks/gpu_check.sh                      # venv .venv, install from PyPI, check
#   bash benchmarks/gpu_check.sh --wheels DIR         # install offline from wheels in DIR
#   bash benchmarks/gpu_check.sh --backend jax --wheels DIR   # JAX host, offline, no TensorFlow
#   bash benchmarks/gpu_check.sh --no-install         # use the active venv (or python3) as is
#   bash benchmarks/gpu_check.sh --no-install --cpu-smoke   # validate the script on a CPU
# Options after these (and any not named here) go to gpu_check.py, e.g. --out DIR, --epochs 2,
# --report none.
set -euo pipefail

venv=.venv
install=1
backend=tensorflow
wheels=
args=()
while (($#)); do
    case "$1" in
        --venv) venv=$2; shift 2 ;;
        --no-install) install=0; shift ;;
        --wheels) wheels=$2; shift 2 ;;
        --backend) backend=$2; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) args+=("$1"); shift ;;
    esac
done

if [[ ! -f pyproject.toml || ! -d ct3d ]]; then
    echo "gpu_check.sh: run it from the ct3d repository root" >&2
    exit 2
fi

start=$SECONDS
case "$backend" in
    tensorflow|jax|torch) ;;
    *) echo "gpu_check.sh: --backend must be tensorflow, jax or torch; got '$backend'" >&2; exit 2 ;;
esac
if ((install)); then
    if [[ $backend == tensorflow ]]; then
        [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    else
        [[ -x $venv/bin/python ]] || python3 -m venv --system-site-packages "$venv"
    fi
    # shellcheck disable=SC1091
    . "$venv/bin/activate"
    if [[ $backend == tensorflow && -n $wheels ]]; then
        pip install -q --no-index --find-links "$wheels" -e ".[gpu]"
    elif [[ $backend == tensorflow ]]; then
        pip install -q --upgrade pip
        pip install -q -e ".[gpu]"
    elif [[ -n $wheels ]]; then
        pip install -q --no-index --no-deps "$wheels"/*.whl
        pip install -q --no-index --find-links "$wheels" --no-deps -e .
    else
        pip install -q -r benchmarks/offline-wheels.txt
        pip install -q --no-deps -e .
    fi
    echo "install: $((SECONDS - start)) s"
fi
python=$(command -v python || command -v python3)

export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1 KERAS_BACKEND=$backend
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
else
    echo "nvidia-smi: not found"
fi
"$python" -c 'from ct3d.engine import devices; from ct3d.backend import keras_backend
print(keras_backend(), devices.visible_gpus() or "- no GPU visible")'

status=0
"$python" benchmarks/gpu_check.py ${args[@]+"${args[@]}"} || status=$?
echo "gpu_check.sh: $((SECONDS - start)) s in all, exit status $status"
exit "$status"
