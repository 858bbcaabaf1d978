#!/usr/bin/env bash
# The 64 MiB carry limit of the device tool (training/LOG.md, sessions 12-13): the GGUF travels in two parts,
# so the tree must be slim for each (training/device_prepare.sh builds the parts). Run on this machine from the
# repo root, between device calls:
#   stage1   before call 1 (.parts/c1 + .whl): the shipped weights, training/runs/* except the dialogue
#            corpus, and bench/*.png move to $STASH (tree ~6 MB + part 1 49.5 MB + wheels 10.4 MB)
#   stage2   before call 2 (.parts/c2): the weights come back (tree ~19 MB + part 2 and corpora 46 MB)
#   restore  after: everything back (run it before any commit; `git status` must then be clean of deletions)
set -eu
STASH=${STASH:-/tmp/hsa-stash}
mkdir -p "$STASH/runs"
case "${1:-}" in
stage1)  # idempotent: a second stage1 (or one after stage2) moves only what is still in the tree
  if [ -f model/assets/hsa-smollm2-135m.safetensors ]; then mv model/assets/hsa-smollm2-135m.safetensors "$STASH/"; fi
  for f in training/runs/*; do case "$f" in *dialogue-*) ;; *) mv "$f" "$STASH/runs/" ;; esac; done
  if ls bench/*.png >/dev/null 2>&1; then mv bench/*.png "$STASH/"; fi ;;
stage2)
  if [ -f "$STASH/hsa-smollm2-135m.safetensors" ]; then mv "$STASH/hsa-smollm2-135m.safetensors" model/assets/; fi ;;
restore)
  if [ -f "$STASH/hsa-smollm2-135m.safetensors" ]; then mv "$STASH/hsa-smollm2-135m.safetensors" model/assets/; fi
  if ls "$STASH"/runs/* >/dev/null 2>&1; then mv "$STASH"/runs/* training/runs/; fi
  if ls "$STASH"/*.png >/dev/null 2>&1; then mv "$STASH"/*.png bench/; fi ;;
*) echo "usage: bash training/device_stage.sh stage1|stage2|restore" >&2; exit 2 ;;
esac
du -sh --exclude=.git --exclude=.venv --exclude=.parts --exclude=.whl --exclude=.whl-test . | sed 's/^/tree: /'
