#!/usr/bin/env bash
# Source on the GPU machine from the repo root: makes `hsa_memory` importable without installing it,
# (run python from outside the repo root: there `hsa_memory` would resolve to the bare folder)
# installs carried wheels (.whl/), and joins GGUF parts gathered under ~/hsa-parts into /tmp/site.
REPO=$(pwd)
mkdir -p /tmp/site /tmp/pkg/hsa_memory ~/hsa-parts
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
# the package layout of setup.py, as links: hsa_memory/* plus each top-level part
for f in "$REPO"/hsa_memory/*; do ln -sfn "$f" /tmp/pkg/hsa_memory/; done
for part in model kernels store integrations cli service training; do ln -sfn "$REPO/$part" /tmp/pkg/hsa_memory/$part; done
export PYTHONPATH=/tmp/pkg:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
# the GPU image has torch/triton/safetensors/tokenizers but not these: carry their wheels in .whl/
# (session 4 lost a whole 8-minute call to a missing zstandard: say so before anything starts)
missing=$(python3 -c "
import importlib.util as u
print(' '.join(m for m in ('gguf', 'zstandard', 'sqlalchemy') if u.find_spec(m) is None))")
if [ -n "$missing" ]; then echo "DEVICE_ENV: missing packages: $missing (pip download their wheels into .whl/)"; fi
# collect any carried parts, then join when all are present
if [ -d .parts ]; then cp -n .parts/*/* ~/hsa-parts/ 2>/dev/null || true; fi
if [ -f ~/hsa-parts/manifest.json ]; then
  python3 - <<'PY'
import json, os, pathlib
m = json.loads(pathlib.Path(os.path.expanduser("~/hsa-parts/manifest.json")).read_text())
missing = [p["name"] for p in m["parts"] if not pathlib.Path(os.path.expanduser("~/hsa-parts/" + p["name"])).is_file()]
print("gguf parts missing:", missing if missing else "none")
PY
  if python3 -c "import json,os,pathlib,sys; m=json.loads(pathlib.Path(os.path.expanduser('~/hsa-parts/manifest.json')).read_text()); sys.exit(any(not pathlib.Path(os.path.expanduser('~/hsa-parts/'+p['name'])).is_file() for p in m['parts']))"; then
    (cd /tmp && python3 -m hsa_memory.training.device join --parts ~/hsa-parts --site /tmp/site)
  fi
fi
if [ -f ~/hsa-parts/corpora.tar.zst ] && [ ! -d ~/corpora ]; then
  (cd /tmp && python3 -m hsa_memory.training.device unpack-corpora --archive ~/hsa-parts/corpora.tar.zst --target ~/corpora)
fi
# the base model's written dialogue kept from an earlier run (training/runs/dialogue-*.jsonl.zst, newest)
dialogue=$(ls -t "$REPO"/training/runs/dialogue-*.jsonl.zst 2>/dev/null | head -n 1)
if [ -n "$dialogue" ] && [ -d ~/corpora ] && [ ! -f ~/corpora/dialogue.jsonl.zst ]; then cp "$dialogue" ~/corpora/dialogue.jsonl.zst; fi
export HSA_MEMORY_CORPORA=~/corpora HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
