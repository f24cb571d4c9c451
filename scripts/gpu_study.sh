#!/usr/bin/env bash
# The GPU study in one call: studies/jitter_vs_multiscale_gpu.toml on Ray, on a bare GPU node
# (PyTorch, no Ray, no network), inside one time budget, with what it measured coming back.
#
#   bash scripts/gpu_study.sh               # on the GPU node: repo root, .carry/ beside it,
#                                           # results to $OUT (docs/gpu.md)
#   bash scripts/gpu_study.sh --rehearse    # here, on the CPU: the same steps, the same
#                                           # commands, tiny settings; $OUT a temp folder
#
# Steps, each timed and logged to $OUT/log.txt; a step that fails is logged and the steps that
# do not need it still run (no mamba-ssm: the study trains with the torch scan; a study cut
# short: its finished trials are still packed):
#   ray      unpack Ray (.carry/ray-site.tar.xz) to PYTHONPATH, add what the image lacks from
#            .carry (Ray's and Tune's requirements; the two scikit-learn photos; typer if the
#            node's does not start ablate's CLI), ablate validate, import ray.tune
#   build    mamba-ssm's CUDA kernels for this GPU's architecture, in the background
#            (causal-conv1d too, only if ablate/model uses it)
#   bench_torch  benchmarks/gpu_bench.py, torch scan, bf16, batch 16 and 128 (during the build)
#   fit_overfit  benchmarks/fit_diagnostics.py overfit: the default model on one batch, raster
#            and 2-D locality (during the build; docs/fit.md); only with GPU_STUDY_FIT=1
#   build_wait   the build, up to GPU_STUDY_BUILD_CAP s after the start
#   cuda_tests   the CUDA tests (fused scan vs reference, CUDA vs CPU, backends)
#   bench_fused  benchmarks/gpu_bench.py, fused scan
#   packing  scripts/packing_probe.py: 1, 2, 4, 6, 9 trials at once; picks gpus_per_trial and,
#            only if the study's epochs would not fit, fewer epochs
#   study    ablate run on an embedded Ray; at its deadline SIGINT (finished trials are
#            committed; Tune stops the rest), then SIGTERM, SIGKILL
#   pack     the study's results without checkpoints → $OUT/gpu_study.tar.gz (< 15 MiB; the
#            held-out predictions in $OUT/gpu_predictions.tar.N parts when they do not fit)
#   table    ablate status; ablate table (markdown, --detail; Y-PSNR) → $OUT/table.md
#
# Environment: OUT (default: a temp folder), GPU_STUDY_BUDGET (s, default 540 on the GPU, 300
# rehearsing), GPU_STUDY_WORK (scratch, default a temp folder), PYTHON, GPU_STUDY_CANDIDATES.
set -uo pipefail

MODE=gpu
if [ "${1:-}" = "--rehearse" ]; then MODE=rehearse; shift; fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
T0=$(date +%s)
if [ "$MODE" = gpu ]; then BUDGET=${GPU_STUDY_BUDGET:-540}; else BUDGET=${GPU_STUDY_BUDGET:-300}; fi
DEADLINE=$((T0 + BUDGET))
PACK_MARGIN=${GPU_STUDY_PACK_MARGIN:-35}   # the study is stopped this long before DEADLINE
STUDY_DEADLINE=$((DEADLINE - PACK_MARGIN))
SPEC=${GPU_STUDY_SPEC:-studies/jitter_vs_multiscale_gpu.toml}
CARRY=${GPU_STUDY_CARRY:-$ROOT/.carry}
WORK=${GPU_STUDY_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_study.XXXXXX")}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_study_out.XXXXXX")}
mkdir -p "$WORK" "$OUT"
RESULTS=$WORK/results
if [ "$MODE" = rehearse ] && [ -x "$ROOT/.venv/bin/python" ]; then
  PY=${PYTHON:-$ROOT/.venv/bin/python}
else
  PY=${PYTHON:-python3}
fi
export PYTHONUNBUFFERED=1
unset RAY_ADDRESS   # an embedded Ray of its own, never one this shell happens to point at

exec > >(tee -a "$OUT/log.txt") 2>&1
TEE_PID=${!:-}  # bash >= 4.4 gives the process substitution's pid

now() { date +%s; }
left() { echo $((DEADLINE - $(now))); }
SUMMARY=()
STEP=""; STEP_T=0
begin() { STEP=$1; STEP_T=$(now); echo; echo "=== t+$((STEP_T - T0))s step $1: $2"; }
end() {  # end RC [NOTE]
  local rc=$1 note=${2:-}
  echo "=== t+$(( $(now) - T0 ))s step $STEP: rc=$rc, $(( $(now) - STEP_T ))s${note:+; $note}"
  SUMMARY+=("$(printf '%-12s rc=%-3s %4ss  %s' "$STEP" "$rc" "$(( $(now) - STEP_T ))" "$note")")
}
skip() { begin "$1" "skipped"; end - "$2"; }

echo "gpu_study.sh ($MODE): budget ${BUDGET}s (study stopped at t+$((STUDY_DEADLINE - T0))s)," \
     "spec $SPEC, work $WORK, out $OUT, python $PY, $(date -u +%FT%TZ)"
# the node gets the working tree without .git (results then record code_version without the
# commit): the commit comes from .carry/commit.txt, written just before the call (docs/gpu.md)
if sha=$(git rev-parse --short=10 HEAD 2>/dev/null); then
  echo "commit $sha$(git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
else
  echo "commit (no git here): $(cat "$CARRY/commit.txt" 2>/dev/null || echo 'unknown: no .carry/commit.txt')"
fi

# --------------------------------------------------------------------------------------------
# rehearsal settings: tiny, on this CPU, this Python looking like the GPU image
# --------------------------------------------------------------------------------------------
STUDY_SETS=()
if [ "$MODE" = rehearse ]; then
  # the GPU image lacks these: ray[default]'s packages (Ray vendors its own aiohttp for its
  # runtime-env agent, which stays importable), tensorboardX, Optuna, MLflow; and scikit-learn,
  # whose two photos come from .carry/sklearn-photos (without .carry, e.g. in a fresh clone's
  # test run, this Python's scikit-learn stays)
  block=aiohttp,aiohttp_cors,aiosignal,frozenlist,multidict,yarl,colorful,py_spy,opencensus
  block=$block,opentelemetry,prometheus_client,smart_open,virtualenv,grpc,tensorboardX,optuna,mlflow
  [ -d "$CARRY/sklearn-photos" ] && block=$block,sklearn
  export GPU_STUDY_BLOCK=${GPU_STUDY_BLOCK:-$block}
  echo "rehearsal: as if not installed: $GPU_STUDY_BLOCK"
  # the smoke model (studies/smoke.toml) at the study's 32-px inputs; 4 held-out crops
  STUDY_SETS=(--set 'study.seeds=[0]' --set data.train_samples=32 --set data.test_samples=4
    --set model.patch_size=4 --set model.num_latents=16 --set model.dim=16 --set model.depth=1
    --set model.d_state=4 --set model.mlp_dim=32 --set model.heads=1 --set model.head_dim=8
    --set model.feature_dim=8 --set 'model.sigmas=[32,8]' --set train.epochs=2
    --set train.lr=2e-3 --set train.warmup_epochs=0
    --set model.liif.encoder_blocks=1 --set model.liif.encoder_channels=8
    --set 'model.liif.mlp_widths=[16]')
  PYTHONPATH_BASE=$ROOT/scripts/rehearse:$ROOT
else
  PYTHONPATH_BASE=$ROOT
fi
export PYTHONPATH=$PYTHONPATH_BASE${PYTHONPATH:+:$PYTHONPATH}
HAS_CUDA=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)

# --------------------------------------------------------------------------------------------
begin ray "Ray and what the image lacks"
# --------------------------------------------------------------------------------------------
rc=0; note=""
pyver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [ -s "$CARRY/ray-site.tar.xz" ]; then
  mkdir -p "$WORK/site"
  # tar (with xz); where xz is missing, Python's tarfile (modes kept: Ray's binaries run)
  if tar xJf "$CARRY/ray-site.tar.xz" -C "$WORK/site" 2>/dev/null \
     || "$PY" -c "import sys, tarfile; t = tarfile.open(sys.argv[1]); t.extraction_filter = getattr(tarfile, 'tar_filter', None); t.extractall(sys.argv[2])" \
          "$CARRY/ray-site.tar.xz" "$WORK/site"; then
    if [ "$pyver" = 3.12 ]; then
      export PYTHONPATH=$WORK/site:$PYTHONPATH
      note="Ray from .carry/ray-site.tar.xz"
    else
      note="unpacked, but it is for Python 3.12 and this is $pyver: this Python's own Ray"
    fi
  else
    rc=1; note="unpacking .carry/ray-site.tar.xz failed"
  fi
else
  note="no .carry/ray-site.tar.xz: this Python's own Ray"
fi
# Ray's own requirements and Tune's, each only where it does not import (module:wheel-name
# prefix); checked on Python 3.12 with none of them installed: attrs for jsonschema, fsspec for
# Tune, pydantic (+3) for Ray Train v2, which Tune imports
for pair in msgpack:msgpack google.protobuf:protobuf yaml:pyyaml requests:requests \
            urllib3:urllib3 idna:idna certifi:certifi charset_normalizer:charset_normalizer \
            click:click filelock:filelock packaging:packaging attrs:attrs \
            typing_extensions:typing_extensions fsspec:fsspec pydantic:pydantic \
            pydantic_core:pydantic_core annotated_types:annotated_types \
            typing_inspection:typing_inspection; do
  mod=${pair%%:*}; whl=${pair#*:}
  if ! "$PY" -c "import $mod" 2>/dev/null; then
    w=$(ls "$CARRY"/fallback-wheels/"$whl"-*.whl 2>/dev/null | head -1)
    if [ -n "$w" ]; then
      mkdir -p "$WORK/fallback-site" && "$PY" -m zipfile -e "$w" "$WORK/fallback-site" \
        && echo "added $(basename "$w") (no $mod here)"
    else
      echo "warning: $mod does not import and .carry/fallback-wheels has no $whl wheel"
    fi
  fi
done
[ -d "$WORK/fallback-site" ] && export PYTHONPATH=$PYTHONPATH:$WORK/fallback-site
if ! "$PY" -c "import sklearn.datasets" 2>/dev/null; then
  if [ -d "$CARRY/sklearn-photos" ]; then
    export PYTHONPATH=$PYTHONPATH:$CARRY/sklearn-photos
    echo "no scikit-learn here: its two bundled photos from .carry/sklearn-photos"
  else
    echo "warning: no scikit-learn and no .carry/sklearn-photos: the bundled source will fail"
  fi
fi
echo "PYTHONPATH=$PYTHONPATH"
# the CLI on this node's typer; where it does not start, the venv's typer (and its two small
# requirements) from .carry/override-wheels, first on the path
if ! "$PY" -m ablate.cli.app validate "$SPEC" > /dev/null; then
  if ls "$CARRY"/override-wheels/*.whl > /dev/null 2>&1; then
    for w in "$CARRY"/override-wheels/*.whl; do "$PY" -m zipfile -e "$w" "$WORK/override-site"; done
    export PYTHONPATH=$WORK/override-site:$PYTHONPATH
    echo "ablate's CLI did not start with this typer: $(ls "$CARRY"/override-wheels | tr '\n' ' ')first on the path"
  fi
  "$PY" -m ablate.cli.app validate "$SPEC" > /dev/null || { rc=1; echo "warning: ablate's CLI does not start"; }
fi
RAY_OK=1
"$PY" - <<'EOF' || { rc=1; RAY_OK=0; }
import importlib, os, platform
import torch
print(f"python {platform.python_version()}, torch {torch.__version__}, cuda "
      f"{torch.version.cuda}, device "
      f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}, "
      f"{os.cpu_count()} CPUs")
import ray, ray.tune  # noqa: E401
from ray._private.utils import get_dashboard_dependency_error
print(f"ray {ray.__version__} from {ray.__file__}; dashboard packages: "
      f"{'yes' if get_dashboard_dependency_error() is None else 'no (Ray runs without it)'}")
importlib.import_module("ablate.orchestrate.driver")
EOF
"$PY" -c "import ablate.data.sources as s; s._package_data_dir('sklearn'); s._package_data_dir('skimage')" \
  || { rc=1; echo "warning: the bundled photos will not load"; }
if [ "$RAY_OK" = 1 ] && [ "$HAS_CUDA" = 1 ]; then
  # Ray counts GPUs through NVML; where it would count none, CUDA_VISIBLE_DEVICES tells it
  ray_gpus=$("$PY" -c "from ray._private.accelerators import NvidiaGPUAcceleratorManager as M; print(M.get_current_node_num_accelerators())" 2>/dev/null || echo 0)
  echo "Ray sees $ray_gpus GPU(s)"
  if [ "$ray_gpus" = 0 ] && [ -z "${CUDA_VISIBLE_DEVICES:-}" ]; then
    n=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
    export CUDA_VISIBLE_DEVICES=$(seq -s, 0 $((n - 1)))
    echo "so CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"
  fi
fi
[ "$RAY_OK" = 1 ] || note="$note; RAY DOES NOT IMPORT: the study runs with --executor local, one trial at a time"
end $rc "$note"

# --------------------------------------------------------------------------------------------
# the mamba-ssm build, in the background while the CPU-light steps run
# --------------------------------------------------------------------------------------------
BUILD_PID=""
if [ "$HAS_CUDA" = 1 ]; then
  begin build "mamba-ssm CUDA kernels (background)"
  if "$PY" -c "import mamba_ssm" 2>/dev/null; then
    end 0 "mamba_ssm already imports"
  elif ! ls "$CARRY"/mamba_ssm-*.tar.gz >/dev/null 2>&1; then
    end 1 "no .carry/mamba_ssm-*.tar.gz: the torch scan"
  else
    arch=$("$PY" -c 'import torch; a, b = torch.cuda.get_device_capability(); print(f"{a}{b}")')
    conv=""
    if grep -rqs "causal_conv1d" ablate/model/; then
      conv="bash '$CARRY/build-causal-conv1d.sh' $(ls "$CARRY"/causal_conv1d-*.tar.gz | head -1) $arch && "
      note="sm_$arch; causal-conv1d too (ablate/model uses it)"
    else
      note="sm_$arch; causal-conv1d skipped: nothing in ablate/model imports it"
    fi
    # the build's own tools, each only where missing: setuptools, wheel (mamba-ssm's setup.py
    # imports it), ninja (without it torch compiles one file at a time)
    BUILD_PATH=$PATH; BUILD_PYTHONPATH=$PYTHONPATH
    for m in setuptools wheel; do
      if ! "$PY" -c "import $m" 2>/dev/null && ls "$CARRY"/build-wheels/$m-*.whl >/dev/null 2>&1; then
        "$PY" -m zipfile -e "$(ls "$CARRY"/build-wheels/$m-*.whl | head -1)" "$WORK/build-site"
        BUILD_PYTHONPATH=$WORK/build-site:$PYTHONPATH; echo "build: $m from .carry/build-wheels"
      fi
    done
    if ! command -v ninja >/dev/null && ls "$CARRY"/build-wheels/ninja-*.whl >/dev/null 2>&1; then
      "$PY" -m zipfile -e "$(ls "$CARRY"/build-wheels/ninja-*.whl | head -1)" "$WORK/build-ninja"
      chmod +x "$WORK"/build-ninja/ninja-*.data/scripts/ninja
      BUILD_PATH=$(echo "$WORK"/build-ninja/ninja-*.data/scripts):$PATH
      echo "build: ninja from .carry/build-wheels"
    fi
    # its own process group (set -m), so that a build still running at its cap is ended whole;
    # PIP_BREAK_SYSTEM_PACKAGES: a distribution's Python (PEP 668) would refuse the install
    set -m
    PATH=$BUILD_PATH PYTHONPATH=$BUILD_PYTHONPATH MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    bash -c "${conv}bash '$CARRY/build-mamba-ssm.sh' \
      $(ls "$CARRY"/mamba_ssm-*.tar.gz | head -1) $arch" > "$WORK/build.log" 2>&1 &
    BUILD_PID=$!
    set +m
    end 0 "started (pid $BUILD_PID), $note"
  fi
else
  skip build "no CUDA device here"
fi

# --------------------------------------------------------------------------------------------
BENCH_FILES=()
bench() {  # bench NAME LIMIT ARGS...
  local name=$1 limit=$2; shift 2
  timeout -k 5 "$limit" "$PY" benchmarks/gpu_bench.py "$@" 2>&1 | tee "$WORK/bench_$name.txt"
  local rc=${PIPESTATUS[0]}
  BENCH_FILES+=("$WORK/bench_$name.txt")
  return "$rc"
}
if [ "$HAS_CUDA" = 1 ]; then
  begin bench_torch "default model, torch scan, bf16, batch 16 and 128 (during the build)"
  bench torch 120 --batches 16,128 --precisions bf16 --backends torch; end $? \
    "${BUILD_PID:+the build shares the CPU}"
else
  begin bench_torch "CPU stand-in: the quickstart-sized model, fp32, batch 2, one step"
  bench torch 60 --device cpu --model quickstart --batches 2 --precisions fp32 --backends torch \
    --steps 1 --warmup 1; end $?
fi

# --------------------------------------------------------------------------------------------
# issue 22's first diagnostic for the default model (docs/fit.md): can it overfit one batch of
# 16 crops at its 32-px input? Raster (the seed's) then 2-D locality, torch scan, bf16, each
# for a share of the time the build leaves idle (never past the build's cap)
fit_overfit() {  # fit_overfit SECONDS ARGS...
  local secs=$1; shift
  timeout -k 5 $((secs + 30)) "$PY" benchmarks/fit_diagnostics.py overfit "$@" \
    --seconds "$secs" 2>&1 | tee -a "$WORK/fit_overfit.txt"
  return "${PIPESTATUS[0]}"
}
if [ "${GPU_STUDY_FIT:-0}" != 1 ]; then
  # off by default: on 2026-12-04 its 138 s left the study too little time and the warm-up cut
  # it to 1 epoch (README, "At the seed's scale"); its figures are in docs/fit.md
  skip fit_overfit "GPU_STUDY_FIT=1 runs it (docs/fit.md has its figures)"
elif [ "$HAS_CUDA" = 1 ]; then
  left=$(( T0 + ${GPU_STUDY_BUILD_CAP:-260} - $(now) - 80 ))
  if [ "$left" -ge 40 ]; then
    begin fit_overfit "default model, one batch, raster then 2-D locality, ${left}s in all"
    per=$(( left / 2 - 10 ))
    fit_overfit "$per" studies/jitter_vs_multiscale_gpu.toml --variant corrected_jitter \
      --device cuda --steps 3000 --every 100 --set model.mamba_backend=torch; r1=$?
    fit_overfit "$per" studies/jitter_vs_multiscale_gpu.toml --variant corrected_jitter \
      --device cuda --steps 3000 --every 100 --set model.mamba_backend=torch \
      --set model.locality=2d --set model.locality_alpha=3; r2=$?
    end $(( r1 | r2 ))
  else
    skip fit_overfit "only ${left}s left before the build's cap"
  fi
else
  begin fit_overfit "CPU stand-in: the smoke model, one batch, a few steps"
  fit_overfit 20 studies/smoke.toml --steps 4 --every 2 --batch 4; end $?
fi

# --------------------------------------------------------------------------------------------
if [ -n "$BUILD_PID" ]; then
  cap=$((T0 + ${GPU_STUDY_BUILD_CAP:-260}))
  begin build_wait "the mamba-ssm build, until t+$((cap - T0))s at most"
  while kill -0 "$BUILD_PID" 2>/dev/null && [ "$(now)" -lt "$cap" ]; do sleep 2; done
  if kill -0 "$BUILD_PID" 2>/dev/null; then
    kill -TERM -- "-$BUILD_PID" 2>/dev/null; sleep 3; kill -KILL -- "-$BUILD_PID" 2>/dev/null
    wait "$BUILD_PID" 2>/dev/null
    tail -n 5 "$WORK/build.log"
    end 124 "over its cap: stopped; the study uses the torch scan"
  else
    wait "$BUILD_PID"; brc=$?
    tail -n 5 "$WORK/build.log"
    if [ "$brc" = 0 ] && "$PY" -c "from ablate.model import scan; assert scan.fused_available(), scan._FUSED_IMPORT_ERROR"; then
      end 0 "mamba_ssm fused kernels import"
    else
      tail -n 40 "$WORK/build.log"
      [ "$brc" = 0 ] && brc=1
      end "$brc" "build failed: the study uses the torch scan"
    fi
  fi
else
  skip build_wait "nothing building"
fi

# --------------------------------------------------------------------------------------------
CUDA_TESTS=(tests/test_scan.py tests/test_model.py tests/test_evaluate.py -k "cuda or fused or backend")
if [ "$HAS_CUDA" = 1 ]; then
  begin cuda_tests "pytest ${CUDA_TESTS[*]}"
  timeout -k 5 90 "$PY" -m pytest -q -p no:cacheprovider "${CUDA_TESTS[@]}"; end $?
else
  begin cuda_tests "no CUDA device: collected only (the same selection)"
  timeout -k 5 90 "$PY" -m pytest -q -p no:cacheprovider --collect-only "${CUDA_TESTS[@]}" | tail -n 3
  end "${PIPESTATUS[0]}" "collected, not run"
fi

# --------------------------------------------------------------------------------------------
if [ "$HAS_CUDA" = 1 ]; then
  if "$PY" -c "from ablate.model import scan; assert scan.fused_available()" 2>/dev/null; then
    begin bench_fused "default model, fused scan, bf16, batch 16 and 128"
    bench fused 90 --batches 16,128 --precisions bf16 --backends fused; end $?
  else
    skip bench_fused "mamba_ssm does not import"
  fi
else
  skip bench_fused "no CUDA device"
fi
"$PY" - "$OUT/bench.json" ${BENCH_FILES[@]+"${BENCH_FILES[@]}"} <<'EOF' || echo "bench.json: not written"
import json, sys
rows, raw = [], {}
for path in sys.argv[2:]:
    text = open(path).read()
    raw[path.rsplit("/", 1)[-1]] = text
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[3].isdigit() and (f[4] == "OOM" or len(f) >= 6):
            row = {"model": f[0], "backend": f[1], "precision": f[2], "batch": int(f[3])}
            if f[4] == "OOM":
                row["oom"] = True
            else:
                peak = float(f[6]) if len(f) > 6 else float("nan")
                row.update(ms_per_step=float(f[4]), img_per_s=float(f[5]),
                           peak_gib=None if peak != peak else peak)
            rows.append(row)
json.dump({"rows": rows, "raw": raw}, open(sys.argv[1], "w"), indent=1)
print(f"bench.json: {len(rows)} rows")
EOF

# --------------------------------------------------------------------------------------------
begin packing "trials at once on this device: measure, choose"
# --------------------------------------------------------------------------------------------
NAME=$("$PY" -c "import tomllib, sys; print(tomllib.load(open(sys.argv[1], 'rb'))['study']['name'])" "$SPEC")
if [ "$MODE" = gpu ]; then
  CANDIDATES=${GPU_STUDY_CANDIDATES:-1,2,4,6,9}
  PROBE=(--window 6 --probe-samples 256 --max-seconds 80 --setup-timeout 50)
else
  CANDIDATES=${GPU_STUDY_CANDIDATES:-1,2}
  PROBE=(--window 2 --gap 0.5 --probe-samples 32 --max-seconds 60 --setup-timeout 40 --device cpu)
fi
[ "$RAY_OK" = 1 ] || CANDIDATES=1   # without Ray: one trial at a time
rm -f "$WORK/choice.env"
timeout -k 5 100 "$PY" scripts/packing_probe.py "$SPEC" --out "$OUT/packing.json" \
  --env-out "$WORK/choice.env" --dir "$WORK/packing" --study-deadline "$STUDY_DEADLINE" \
  --candidates "$CANDIDATES" "${PROBE[@]}" ${STUDY_SETS[@]+"${STUDY_SETS[@]}"}
prc=$?
CONCURRENT=""; GPUS_PER_TRIAL=""; CPUS_PER_TRIAL=""; EPOCHS=""; EPOCHS_CUT=0; PREDICTED_S=""
[ -s "$WORK/choice.env" ] && . "$WORK/choice.env"
if [ -z "$GPUS_PER_TRIAL" ]; then  # no measurement: the spec's own packing and epochs
  if [ "$HAS_CUDA" = 1 ]; then GPUS_PER_TRIAL=0.25; CPUS_PER_TRIAL=4; else GPUS_PER_TRIAL=0; CPUS_PER_TRIAL=1; fi
  end "$prc" "no choice measured: gpus_per_trial $GPUS_PER_TRIAL, the spec's epochs"
else
  end "$prc" "$CONCURRENT at once: gpus_per_trial $GPUS_PER_TRIAL, cpus_per_trial $CPUS_PER_TRIAL, $EPOCHS epochs$([ "$EPOCHS_CUT" = 1 ] && echo ' (CUT)'), predicted ${PREDICTED_S}s"
fi

# --------------------------------------------------------------------------------------------
begin study "ablate run $SPEC on an embedded Ray, stopped at t+$((STUDY_DEADLINE - T0))s at the latest"
# --------------------------------------------------------------------------------------------
SETS=(${STUDY_SETS[@]+"${STUDY_SETS[@]}"} --set "resources.gpus_per_trial=$GPUS_PER_TRIAL"
      --set "resources.cpus_per_trial=$CPUS_PER_TRIAL")
[ "$EPOCHS_CUT" = 1 ] && SETS+=(--set "train.epochs=$EPOCHS")
if [ "$RAY_OK" = 1 ]; then
  EXECUTOR=(--executor ray)
else
  EXECUTOR=(--executor local --device "$([ "$HAS_CUDA" = 1 ] && echo cuda || echo cpu)")
fi
SETS=("${EXECUTOR[@]}" "${SETS[@]}")
echo "ablate run $SPEC --results $RESULTS ${SETS[*]}"
# its own process group (set -m): SIGINT reaches the driver with Python's default handler
# (not ignored, as in a background job otherwise), and a last SIGKILL reaches Ray's processes
set -m
"$PY" -m ablate.cli.app run "$SPEC" --results "$RESULTS" "${SETS[@]}" &
RUN_PID=$!
set +m
stopped=""; termed=""
while kill -0 "$RUN_PID" 2>/dev/null; do
  t=$(now)
  if [ -z "$stopped" ] && [ "$t" -ge "$STUDY_DEADLINE" ]; then
    echo "study: deadline reached: SIGINT (finished trials stay committed; Tune stops the rest)"
    kill -INT "$RUN_PID" 2>/dev/null; stopped=$t
  elif [ -n "$stopped" ] && [ "$t" -ge $((stopped + 25)) ]; then
    echo "study: still running 25 s after SIGINT: SIGKILL to its process group"
    kill -KILL -- "-$RUN_PID" 2>/dev/null; break
  elif [ -n "$stopped" ] && [ -z "$termed" ] && [ "$t" -ge $((stopped + 18)) ]; then
    echo "study: still running 18 s after SIGINT: SIGTERM"
    kill -TERM "$RUN_PID" 2>/dev/null; termed=1
  fi
  sleep 1
done
wait "$RUN_PID"; src=$?
end "$src" "$([ -n "$stopped" ] && echo 'stopped at its deadline; ')exit $src (0 all completed, 1 some failed, 130 stopped)"

# --------------------------------------------------------------------------------------------
begin pack "results without checkpoints → \$OUT/gpu_study.tar.gz"
# --------------------------------------------------------------------------------------------
krc=0; note=""
# each file that comes back stays under this (the device returns files of at most 16 MiB);
# rehearsing, 4 MiB, so that the predictions' split below runs here too
if [ "$MODE" = gpu ]; then LIMIT=${GPU_STUDY_FILE_LIMIT:-$((15 * 1024 * 1024))}
else LIMIT=${GPU_STUDY_FILE_LIMIT:-$((4 * 1024 * 1024))}; fi
if [ -d "$RESULTS/$NAME" ]; then
  # Tune's error files of failed trials, beside the results (the rest of ray/ stays behind)
  mkdir -p "$WORK/pack/ray-errors"
  find "$RESULTS/$NAME/ray" -name error.txt 2>/dev/null | while read -r f; do
    cp "$f" "$WORK/pack/ray-errors/$(basename "$(dirname "$f")").txt"
  done
  cp "$OUT/packing.json" "$WORK/pack/" 2>/dev/null
  EXCL=(--exclude="$NAME/ray" --exclude="$NAME/checkpoints" --exclude="$NAME/.work"
        --exclude="$NAME/.stage-*" --exclude="$NAME/.run.lock" --exclude="*.pt")
  tar czf "$OUT/gpu_study.tar.gz" "${EXCL[@]}" -C "$RESULTS" "$NAME" -C "$WORK/pack" . || krc=1
  size=$(stat -c %s "$OUT/gpu_study.tar.gz" 2>/dev/null || echo 0)
  if [ "$size" -gt "$LIMIT" ]; then
    # the held-out predictions (float32 images) apart, in parts small enough to come back
    tar czf "$OUT/gpu_study.tar.gz" "${EXCL[@]}" --exclude="predictions.npz" \
      -C "$RESULTS" "$NAME" -C "$WORK/pack" . || krc=1
    (cd "$RESULTS" && find "$NAME/artifacts" -name predictions.npz | sort | tar cf - -T -) \
      | split -b "$LIMIT" -d -a 1 - "$OUT/gpu_predictions.tar."
    parts=$(ls "$OUT"/gpu_predictions.tar.* | wc -l)
    if [ "$parts" -gt 3 ]; then
      ls "$OUT"/gpu_predictions.tar.* | tail -n +4 | xargs rm -f
      note="predictions: $parts parts, only the first 3 kept; "; krc=1
    fi
    note="${note}predictions apart: cat gpu_predictions.tar.* | tar x; "
  fi
  n=$(tar tzf "$OUT/gpu_study.tar.gz" | grep -c "/trials/.*\.parquet$")
  note="${note}$n trial files, $(du -h "$OUT/gpu_study.tar.gz" | cut -f1)"
else
  krc=1; note="no results folder $RESULTS/$NAME"
fi
end "$krc" "$note"

# --------------------------------------------------------------------------------------------
begin table "ablate status and table (after the archive: the archive alone rebuilds them)"
# --------------------------------------------------------------------------------------------
# each command capped by what is left until t+BUDGET+50 s, ahead of the call's 600-s limit
cap() { local c=$((T0 + BUDGET + 50 - $(now))); [ "$c" -lt 5 ] && c=5; echo "$c"; }
trc=0
timeout -k 2 "$(cap)" "$PY" -m ablate.cli.app status "$RESULTS" || trc=$?
{
  echo "# $NAME on $(hostname 2>/dev/null || uname -n) — $(date -u +%FT%TZ)"
  echo
  timeout -k 2 "$(cap)" "$PY" -m ablate.cli.app table "$RESULTS" --study "$NAME" \
    --format markdown --detail 2>&1 || trc=$?
  echo
  echo "## Y-PSNR (the SR literature's)"
  echo
  timeout -k 2 "$(cap)" "$PY" -m ablate.cli.app table "$RESULTS" --study "$NAME" \
    --format markdown --metric psnr_y 2>&1 || trc=$?
} > "$OUT/table.md"
cat "$OUT/table.md"
end "$trc"

# --------------------------------------------------------------------------------------------
echo
echo "=== summary ($MODE), t+$(( $(now) - T0 ))s of ${BUDGET}s"
printf '  %s\n' ${SUMMARY[@]+"${SUMMARY[@]}"}
ls -la "$OUT"
final=0
[ "$src" = 0 ] || final=1
[ "$krc" = 0 ] || final=1
# anything of the study's process group still alive (a Ray process outliving its driver) would
# hold the log's pipe open: it goes, and tee gets 5 s to finish the log
kill -KILL -- "-$RUN_PID" 2>/dev/null
exec 1>&- 2>&-
for _ in $(seq 50); do [ -n "$TEE_PID" ] && kill -0 "$TEE_PID" 2>/dev/null || break; sleep 0.1; done
[ -n "$TEE_PID" ] && kill "$TEE_PID" 2>/dev/null
exit "$final"
