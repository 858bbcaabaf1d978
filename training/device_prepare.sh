#!/usr/bin/env bash
# Everything the device calls carry, rebuilt on a fresh checkout in one go (~1-2 min; training/LOG.md,
# sessions 12-14, did it by hand each time). Run on this machine from the repo root after `make setup`:
#   .parts/c1   GGUF part 1 + manifest              (call 1, with .whl)
#   .parts/c2   GGUF part 2 + manifest + corpora    (call 2)
#   .whl        gguf, zstandard, sqlalchemy wheels for the GPU image's Python 3.12
#   .whl-test   pytest and its dependencies (optional carry, for GPU tests)
# then `bash training/device_stage.sh stage1` before call 1 (see that file).
set -eu
PY=${PY:-.venv/bin/python}
rm -rf .parts && mkdir -p .parts/c1 .parts/c2 .whl .whl-test
"$PY" -P -m hsa_memory.training.device split --zstd --part-mb 49.5 > /dev/null
"$PY" -P -c "from hsa_memory.training.data.corpora import ensure_corpora; ensure_corpora()"
"$PY" -P -m hsa_memory.training.device pack-corpora > /dev/null
mv .parts/gguf.0 .parts/c1/ && cp .parts/manifest.json .parts/c1/
mv .parts/gguf.1 .parts/corpora.tar.zst .parts/manifest.json .parts/c2/
if ls .parts/gguf.* > /dev/null 2>&1; then echo "device_prepare: more than two GGUF parts; carry them in more calls" >&2; exit 1; fi
PIP="python3 -m pip download -q --no-deps"
$PIP gguf==0.19.0 -d .whl
$PIP zstandard==0.25.0 sqlalchemy==2.1.9 --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .whl
$PIP pytest pluggy iniconfig packaging pygments -d .whl-test 2> /dev/null || echo "device_prepare: .whl-test incomplete (optional)"
du -sh .parts/c1 .parts/c2 .whl .whl-test
