#!/usr/bin/env bash
# Tune the zoo models for x86-avx512 (2 threads) on a bigger x86 machine (the GPU host's 16 cores),
# resuming from the records in logs/x86-avx512/; new shards are copied to $OUT.
# Usage (on that machine, after installing apache-tvm into /tmp/site): bash bench/gpu_host_cpu_tune.sh MINUTES
set -uo pipefail
minutes=${1:-8}
export PYTHONPATH=/tmp/site:$PWD
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | sed 's/Flags:.*\(avx512f\).*/Flags: ... avx512f .../'
grep -q avx512f /proc/cpuinfo || { echo "no AVX-512 here: cannot measure x86-avx512 code"; exit 3; }
mkdir -p /tmp/zoo
before=$(ls logs/x86-avx512/*.jsonl 2>/dev/null | sort)
for m in mobilenetv2 resnet50 encoder; do
  [ -f /tmp/zoo/$m.onnx ] || python3 -m crosstune.cli zoo export $m -o /tmp/zoo/$m.onnx >/dev/null
done
for m in mobilenetv2 resnet50 encoder; do
  python3 -m crosstune.cli tune /tmp/zoo/$m.onnx --target bench/x86-avx512-2core.toml \
    --trials-per-task ${TRIALS_PER_TASK:-64} --time-budget ${minutes}m --build-workers 4 > /tmp/tune-$m.log 2>&1 &
done
wait
for m in mobilenetv2 resnet50 encoder; do echo "== $m"; grep -v "^  \[" /tmp/tune-$m.log | tail -n 60; done
after=$(ls logs/x86-avx512/*.jsonl 2>/dev/null | sort)
for f in $(comm -13 <(echo "$before") <(echo "$after")); do cp "$f" "$OUT/"; done
ls -la $OUT
