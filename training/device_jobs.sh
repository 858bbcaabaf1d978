#!/usr/bin/env bash
# Background jobs on the GPU machine (training/LOG.md, sessions 4-5): a training run (setsid: it outlives
# the call while the machine stays warm), and beside it two jobs whose results do not depend on timing:
# bench/niah.py with the shipped weights at lengths the CPU cannot reach, and the memories bench/api.py
# measures later (built now, asked with --measure-only once training is done and the GPU is quiet).
# Usage (repo root, after `source training/device_env.sh`):
#   RUN=run10 SEED=10 BUDGET=840 bash training/device_jobs.sh start|check|wait|collect|ablate|measure
# Recipe knobs (env): RESUME (checkpoint), STEPS (at most), BUDGET (s; the lr cosine ends when steps or budget run out), SEED, SEQ and BATCH (training length and rows;
# default 4096 x 16), WARMUP (lr warm-up steps, default 10), TRAIN_ARGS (more train.py options, e.g. "--recency-bias --bias-lr-scale 40"), DECOY (hard-negative router loss weight,
# objectives.decoy_loss; default 0 = the run-9/10/11 recipe unchanged), DIALOGUE (exchanges of base-model
# dialogue to write first and mix into agent histories; default 0 = none, or the corpus kept in the repo),
# PROFILE (steps of the run profiled into profile.txt after 5, default 3; 0 = none), EVAL_COUNT (held-out examples per eval row, for the run's end eval and the baseline; default 64: 16 left
# a 2-in-16 difference undecided in session 10, and 64 rows of four tasks take ~1 min on the H100).
# Wheels to carry in .whl/ (the image lacks them): gguf, zstandard (cp312), sqlalchemy (cp312).
# Always `check` right after `start`: a job that died at import must not be slept on.
set -u
REPO=${REPO:-$(pwd)}
# `start` records its run; the other commands default to it, so a call that forgets RUN= reads the right run
# (session 13 lost a `check` call to the old default)
if [ -z "${RUN:-}" ] && [ "$1" != start ] && [ -f /root/current_run ]; then RUN=$(cat /root/current_run); fi
RUN=/root/${RUN:-run10}
RESUME=${RESUME:-$REPO/model/assets/hsa-smollm2-135m.safetensors}
DIALOGUE_FILE=${HSA_MEMORY_CORPORA:-$HOME/.cache/hsa-memory/corpora}/dialogue.jsonl.zst
collect() {
  tail -n 12 $RUN/train.log; tail -n 12 /root/baseline.log; tail -n 4 /root/niah.log /root/api-build.log 2>/dev/null
  nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader
  cp $RUN/checkpoint.safetensors $RUN/metrics.jsonl $RUN/train.log $RUN/profile.txt /root/niah.json /root/niah.log \
     /root/api-build.log /root/baseline.log "$OUT"/ 2>/dev/null
  [ -f $RUN/eval.jsonl ] && cp $RUN/eval.jsonl "$OUT"/
  [ -f "$DIALOGUE_FILE" ] && cp "$DIALOGUE_FILE" "$OUT"/
  return 0
}
case "$1" in
start)
  mkdir -p $RUN /root/api
  basename $RUN > /root/current_run
  cd /tmp
  # DIALOGUE=N: the base model first writes ~N exchanges of filler dialogue (training.write_dialogue, ~1-2
  # min on the GPU; about half survive its filters) and training mixes them in (--filler corpora+dialogue);
  # `check` must then wait longer (e.g. `check 240`)
  # (a failed write must not cost the run: training then falls back to the corpora filler alone)
  # A corpus already there (device_env.sh copies the one kept in training/runs/) is used without writing;
  # FILLER=corpora turns it off
  WRITE=false
  if [ "${DIALOGUE:-0}" -gt 0 ]; then
    WRITE="python3 -m hsa_memory.training.write_dialogue --exchanges $DIALOGUE --device cuda --batch-size 256"
  elif [ -f "$DIALOGUE_FILE" ] && [ "${FILLER:-}" != corpora ]; then
    WRITE=true
  fi
  setsid nohup bash -c "if $WRITE; then FILLER=corpora+dialogue; else FILLER=corpora; fi; echo filler \$FILLER; \
    exec python3 -m hsa_memory.training.train --resume $RESUME --seed ${SEED:-10} \
    --out $RUN --backend triton --steps ${STEPS:-2000} --seq-len ${SEQ:-4096} --batch ${BATCH:-16} --lr 5e-4 --warmup-steps ${WARMUP:-10} \
    --encoder-lr-scale 0.1 --retrieval-weight 0.3 --decoy-weight ${DECOY:-0} --kl-weight 0.5 --kl-positions 256 --distill-weight 0.2 \
    --mix agent_memory:0.6,s_niah:0.15,mq_niah:0.15,variable_tracking:0.1 --checkpointing --workers 10 \
    --time-budget ${BUDGET:-720} --save-every 25 --profile-steps ${PROFILE:-3} \
    --filler \$FILLER ${TRAIN_ARGS:-} --eval-count ${EVAL_COUNT:-64} --eval s_niah:8192,agent_memory:8192,mq_niah:8192,agent_memory:2048" > $RUN/train.log 2>&1 < /dev/null &
  # BASELINE=1: the weights being resumed, evaluated on the run's own held-out sets (same machine, same
  # examples) so the end-of-run eval has its comparison; EXTRAS=0 skips niah.py and api.py (measured in
  # session 5) so training has the GPU to itself
  if [ "${BASELINE:-1}" = 1 ]; then
    setsid nohup python3 -m hsa_memory.training.evaluate --checkpoint $RESUME --device cuda --count ${EVAL_COUNT:-64} \
      --eval s_niah:8192,agent_memory:8192,mq_niah:8192,agent_memory:2048 > /root/baseline.log 2>&1 < /dev/null &
  fi
  [ "${EXTRAS:-1}" = 1 ] || exit 0
  setsid nohup python3 $REPO/bench/niah.py --device cuda --lengths 16K,64K,256K --depths 0,0.25,0.5,0.75,1 \
    --count 1 --tasks s_niah,mq_niah,vt --json /root/niah.json > /root/niah.log 2>&1 < /dev/null &
  setsid nohup python3 $REPO/bench/api.py --device cuda --sizes 100K,1M,16M --real-upto 100K --asks 1 \
    --workdir /root/api > /root/api-build.log 2>&1 < /dev/null &
  ;;
check)  # 90 s after start: each job must still be running and training must have logged a step
  sleep ${2:-90}
  for log in $RUN/train.log /root/baseline.log /root/niah.log /root/api-build.log; do
    if grep -q "Traceback" $log 2>/dev/null; then echo "FAILED: $log"; tail -n 5 $log; fi
  done
  grep -q "step 0 " $RUN/train.log || { echo "training has not started"; tail -n 20 $RUN/train.log; exit 1; }
  ;;
wait)  # until training has written its summary (or the given seconds pass), then collect:
  # session 5 lost a 12-minute run when the machine was taken back mid-call, so every call brings back
  # what exists so far (a checkpoint is written every --save-every steps)
  end=$((SECONDS + ${2:-500}))
  while [ $SECONDS -lt $end ] && ! grep -q '"eval"' $RUN/train.log 2>/dev/null; do sleep 5; done
  collect
  ;;
collect)
  collect
  ;;
gputests)  # the kernel tests on the GPU (tests/kernels/conftest.py picks CUDA when there is one); the image
  # lacks pytest: carry its wheels once in .whl-test/ (pytest, pluggy, iniconfig, packaging, pygments)
  if ls $REPO/.whl-test/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $REPO/.whl-test/*.whl
  fi
  cd /tmp && python3 -m pytest -q -p no:cacheprovider $REPO/tests/kernels 2>&1 | tail -n 25
  ;;
ablate)  # the run's end checkpoint with its supersession scale zeroed (training.evaluate --no-supersession; or
  # ABLATE=--no-lora: its low-rank deltas dropped), on the same held-out rows as the end eval: whether the trained
  # part or the extra steps made a difference
  cd /tmp && python3 -m hsa_memory.training.evaluate --checkpoint $RUN/checkpoint.safetensors --device cuda \
    --count ${EVAL_COUNT:-64} ${ABLATE:---no-supersession} --eval s_niah:8192,agent_memory:8192,mq_niah:8192,agent_memory:2048 \
    2>&1 | tee "$OUT"/ablate.jsonl | tail -n 4
  ;;
measure)  # the memories built by `start`, asked on a quiet GPU
  cd /tmp && python3 $REPO/bench/api.py --device cuda --sizes 100K,1M,16M --real-upto 100K --asks ${ASKS:-6} \
    --workdir /root/api --measure-only --json "$OUT"/api.json 2>&1 | tail -n 40
  ;;
esac
exit 0
