#!/usr/bin/env bash
# crosstune's jobs on the GPU machine, one phase per device call (../shared/gpu/README.md says how
# apache-tvm gets there: three transfers, then .gpu/c/install.sh). Results land in $OUT.
#   bash bench/gpu_session.sh smoke            artifacts compiled on the CPU machine (.gpu/art) run here;
#                                              compile + verify fp32/fp16 here; the one-line errors
#   bash bench/gpu_session.sh tune MIN PREC    tune the zoo (ResNet-50 b1 and b16, MobileNetV2, encoder;
#                                              MODELS="resnet50 resnet50:16" picks) as one job for MIN
#                                              minutes at PREC (fp32|fp16|fp32,fp16), resuming
#                                              from logs/h200/; new record shards -> $OUT/shards-PREC.tgz
#                                              (TRIALS_PER_ROUND 32, POPULATION 64, SEARCH_ITERS 2:
#                                              search was most of a round at 256/4 on the H200;
#                                              TRIALS_PER_TASK 64; the tuner
#                                              is sent Ctrl-C STOP_AT s after the script started, 560 by
#                                              default, so records are kept and tarred within one 600 s call)
#   bash bench/gpu_session.sh profile          seconds per candidate build, NVRTC against nvcc
#   bash bench/gpu_session.sh bench MODEL...   crosstune bench against torch, torch.compile, ORT, TensorRT
#   bash bench/gpu_session.sh kprofile MODEL... each kernel's share of GPU time (bench/gpu_kernel_profile.py)
#   bash bench/gpu_session.sh tests            pytest -m gpu
# LAYOUT=NCHW|NHWC passes --layout to tune, bench and kprofile (default: the h200 preset's);
# CONV=direct|winograd passes --conv to tune and bench (default: the store's choice).
# Each device call gets a fresh copy of the working tree, but /tmp lives as long as the machine is
# held: the store is kept in /tmp/ctlogs (seeded from logs/ without overwriting), so a later call on
# the same machine tunes on and benches with what earlier calls measured. New shards also go to
# $OUT, to be unpacked into logs/h200/ here and committed.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/zoo
export CROSSTUNE_LOGS=${CROSSTUNE_LOGS:-/tmp/ctlogs}; mkdir -p "$CROSSTUNE_LOGS"; cp -rn logs/* "$CROSSTUNE_LOGS"/
ct() { python3 -m crosstune.cli "$@"; }
zoo() {  # zoo NAME [BATCH] -> /tmp/zoo/NAME[-bBATCH].onnx
  local f=/tmp/zoo/$1${2:+-b$2}.onnx
  [ -f "$f" ] || ct zoo export "$1" ${2:+--batch $2} -o "$f" >/dev/null
  echo "$f"
}
phase=${1:?phase}; shift
case $phase in
smoke)
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv
  python3 -c "import torch, onnxruntime as o; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'ort', o.__version__)"
  ct targets | grep -E "^(NAME|cuda|h100|h200) "
  echo "== artifacts compiled on the CPU machine (nvcc, no GPU there), run here"
  ct run .gpu/art/mnv2.h100.ctm --repeat 50 --json "$OUT/run-mnv2-cpu-built.json"
  python3 - <<'PY'
import numpy as np, onnxruntime as ort, crosstune
m = crosstune.load(".gpu/art/conv.h100.ctm"); x = m.example_inputs(0)
got = m.run(x); ref = ort.InferenceSession(".gpu/art/conv.onnx", providers=["CPUExecutionProvider"]).run(None, x)
for (k, v), r in zip(got.items(), ref):
    print("conv.h100.ctm vs ORT:", k, "max abs err %.2e" % float(np.max(np.abs(v - r))), "PASS" if np.allclose(v, r, 1e-3, 1e-4) else "FAIL")
PY
  echo "== errors"; ct run .gpu/art/conv.sm100.ctm; echo "rc=$?"
  CUDA_VISIBLE_DEVICES= ct run .gpu/art/conv.h100.ctm; echo "rc=$?"
  echo "== compile here (NVRTC) and verify, fp32 and fp16"
  m=$(zoo mobilenetv2)
  ct compile "$m" --target cuda --verify -o /tmp/m32.ctm
  ct compile "$m" --target cuda --precision fp16 --verify -o /tmp/m16.ctm
  ct run /tmp/m32.ctm --repeat 100; ct run /tmp/m16.ctm --repeat 100
  ;;
tune)
  minutes=${1:-8}; prec=${2:-fp32,fp16}
  models=""; for spec in ${MODELS:-resnet50 resnet50:16 mobilenetv2 encoder}; do
    name=${spec%%:*}; batch=${spec#*:}; [ "$batch" = "$spec" ] && batch=; models="$models $(zoo $name $batch)"; done
  store=$CROSSTUNE_LOGS/h200
  before=$(ls $store/*.jsonl 2>/dev/null | sort)
  timeout -s INT "$(( ${STOP_AT:-560} - SECONDS ))" python3 -m crosstune.cli tune $models --target cuda --precision "$prec" ${LAYOUT:+--layout $LAYOUT} ${CONV:+--conv $CONV} \
     --time-budget "${minutes}m" --trials-per-task "${TRIALS_PER_TASK:-64}" --min-repeat-ms 20 \
     --trials-per-round "${TRIALS_PER_ROUND:-32}" --population "${POPULATION:-64}" --search-iters "${SEARCH_ITERS:-2}" 2>&1 | grep -v "^  \[" | tee "$OUT/tune-${TAG:-1}.log" | tail -n 80
  after=$(ls $store/*.jsonl 2>/dev/null | sort)
  new=$(comm -13 <(echo "$before") <(echo "$after"))
  [ -n "$new" ] && tar czf "$OUT/shards-${TAG:-1}.tgz" -C "$store" $(for f in $new; do basename "$f"; done) && ls -la "$OUT"
  ;;
profile)
  m=$(zoo resnet50)
  for mode in nvrtc nvcc; do
    TVM_CUDA_COMPILE_MODE=$mode python3 bench/gpu_build_profile.py "$m" --json "$OUT/build-profile-$mode.json" 2>&1 | grep -v Warning
  done
  ;;
bench)
  for spec in "$@"; do  # resnet50 resnet50:16 mobilenetv2 encoder
    name=${spec%%:*}; batch=${spec#*:}; [ "$batch" = "$spec" ] && batch=
    f=$(zoo "$name" $batch)
    ct bench "$f" --target cuda --against torch,torch-compile,torch-compile-ro,onnxruntime,tensorrt \
       --precision ${PRECISIONS:-fp32,fp16} ${LAYOUT:+--layout $LAYOUT} ${CONV:+--conv $CONV} --repeat ${REPEAT:-200} --warmup 30 --json "$OUT/gpu-$name${batch:+-b$batch}.results.json"
  done
  ;;
kprofile)
  for spec in "$@"; do  # each kernel's share of the GPU time, records vs default schedules
    name=${spec%%:*}; batch=${spec#*:}; [ "$batch" = "$spec" ] && batch=
    f=$(zoo "$name" $batch)
    for p in $(echo ${PRECISIONS:-fp32,fp16} | tr , ' '); do
      python3 bench/gpu_kernel_profile.py "$f" --target cuda --precision $p ${LAYOUT:+--layout $LAYOUT} ${CONV:+--conv $CONV} \
        --json "$OUT/kprofile-$name${batch:+-b$batch}-$p.json" 2>&1 | grep -v Warning | head -n ${ROWS:-25}
    done
  done
  ;;
tests)
  python3 -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tail -n 40
  ;;
*) echo "unknown phase $phase"; exit 2 ;;
esac
