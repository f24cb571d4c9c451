#!/usr/bin/env bash
# Builds .carry/, what scripts/gpu_study.sh needs on a bare GPU node beside the checkout
# (docs/gpu.md). Run here once, with the package index reachable; .carry/ is git-ignored
# (.git/info/exclude) and travels as a carried path.
#
#   bash scripts/gpu_carry.sh TOOLS_DIR [OUT_DIR=.carry]
#
# TOOLS_DIR holds carry-ray.sh, build-mamba-ssm.sh, build-causal-conv1d.sh and the
# mamba_ssm-*.tar.gz / causal_conv1d-*.tar.gz source archives. What it writes to OUT_DIR:
#   ray-site.tar.xz         Ray 2.60 for Python 3.12 + jsonschema & co. (carry-ray.sh, ~28 MB)
#   build-*.sh, *.tar.gz    the offline one-architecture builds of mamba-ssm / causal-conv1d
#   fallback-wheels/        Ray's and Tune's requirements (msgpack, protobuf, PyYAML, requests
#                           and its four, click, filelock, packaging, attrs, typing_extensions,
#                           fsspec, pydantic and its three) for Python 3.12, at this venv's
#                           versions: unpacked on the node only for those that do not import
#   build-wheels/           setuptools, wheel, ninja: for the mamba-ssm build, only where missing
#   override-wheels/        typer (+ annotated-doc, shellingham) at this venv's versions, first
#                           on the path only where the node's typer does not start ablate's CLI
#   sklearn-photos/         china.jpg and flower.jpg, two of the bundled photos, which ship in
#                           scikit-learn's wheel, as a package `sklearn.datasets.images` that
#                           holds nothing else: on PYTHONPATH only where scikit-learn is missing
set -euo pipefail
tools=$(cd "${1:?usage: gpu_carry.sh TOOLS_DIR [OUT_DIR]}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
out=${2:-$root/.carry}
mkdir -p "$out"; out=$(cd "$out" && pwd)
py=${PYTHON:-$root/.venv/bin/python}

if [ ! -s "$out/ray-site.tar.xz" ]; then
  bash "$tools/carry-ray.sh" "$out" 2.60.0 3.12
fi
cp -f "$tools"/build-mamba-ssm.sh "$tools"/build-causal-conv1d.sh "$out/"
cp -f "$tools"/mamba_ssm-*.tar.gz "$tools"/causal_conv1d-*.tar.gz "$out/"

# Ray's requirements, pinned to what this venv runs Ray 2.60 with
pins=()
for dist in msgpack protobuf PyYAML requests urllib3 idna certifi charset-normalizer click \
            filelock packaging attrs typing_extensions fsspec pydantic pydantic_core \
            annotated_types typing_inspection; do
  pins+=("$dist==$("$py" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$dist")")
done
rm -rf "$out/fallback-wheels"; mkdir -p "$out/fallback-wheels"
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 -d "$out/fallback-wheels" "${pins[@]}"

# what building mamba-ssm needs beyond torch, for a node without it: setuptools (this venv's),
# wheel (its setup.py imports it) and ninja (without it, torch builds one file at a time)
rm -rf "$out/build-wheels"; mkdir -p "$out/build-wheels"
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$out/build-wheels" \
  "setuptools==$("$py" -c "import importlib.metadata as m; print(m.version('setuptools'))")" \
  wheel==0.48.0 ninja==1.13.2

# ablate's CLI as this venv runs it, for a node whose typer does not start it
pins=()
for dist in typer annotated-doc shellingham; do
  pins+=("$dist==$("$py" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$dist")")
done
rm -rf "$out/override-wheels"; mkdir -p "$out/override-wheels"
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 -d "$out/override-wheels" "${pins[@]}"

images=$("$py" -c "import sklearn.datasets, pathlib; print(pathlib.Path(sklearn.datasets.__file__).parent / 'images')")
rm -rf "$out/sklearn-photos"
mkdir -p "$out/sklearn-photos/sklearn/datasets/images"
printf '"""Not scikit-learn: only the two photos of its wheel that ablate'"'"'s bundled source reads\n(scripts/gpu_carry.sh), for a GPU node without scikit-learn."""\n' \
  > "$out/sklearn-photos/sklearn/__init__.py"
: > "$out/sklearn-photos/sklearn/datasets/__init__.py"
cp "$images/china.jpg" "$images/flower.jpg" "$out/sklearn-photos/sklearn/datasets/images/"

du -sh "$out"; ls -la "$out"
