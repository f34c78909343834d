"""How close each CPU engine runs to this machine's fp32 GEMM peak, and what the issue-3 goal asks.

    python bench/cpu_roofline.py [--models resnet50,mobilenetv2,encoder] [--threads 2] [--rounds 5]

For each zoo model, in one process and in rounds taking turns (`benchmark_rounds`, as
`bench/cpu_vs_peers.py` does), times crosstune (the stored records in logs/<preset>/), ONNX Runtime,
OpenVINO and a 3072x3072 fp32 matrix product in NumPy (OpenBLAS) and in PyTorch (oneDNN/MKL): the
faster product is the peak, measured in the same minutes as the engines, because these VMs' speed
drifts by 2x over minutes. Counts each model's multiply-adds from its ONNX graph (Conv, Gemm, MatMul,
after shape inference) and prints each engine's effective GFLOP/s (2 x multiply-adds / latency) as a
share of that peak, and the latency and share of peak that the goal needs (1.25x faster than the
best of ONNX Runtime and OpenVINO for the CNNs, no slower for the encoder). It also measures the
cores' fp32 fused multiply-add throughput (a C loop built with cc, the ceiling no fp32 program
passes) and what share of it the goal needs, with every multiply-add computed and with every 3x3
stride-1 convolution as Winograd F(4x4, 3x3). A goal above 100% of
peak cannot be met by computing every multiply-add (direct convolution); only an algorithm with
fewer of them (Winograd) could. Writes the table to bench/results/cpu_roofline-<preset>.txt. Needs
`pip install openvino` (the `bench` extra).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--models", default="resnet50,mobilenetv2,encoder")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--repeat", type=int, default=30)
args = ap.parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TVM_NUM_THREADS"):
    os.environ[var] = str(args.threads)

from _common import RESULTS, graph_shapes  # noqa: E402 - bench/ is on sys.path

GOAL = {"resnet50": 1.25, "mobilenetv2": 1.25, "encoder": 1.0}


class GemmPeak:
    """A square fp32 matrix product as an engine (the compare.Engine calls `benchmark_rounds` makes),
    so the peak is timed in the same rounds as the engines it is compared with."""

    def __init__(self, lib: str, n: int = 3072):
        import numpy as np
        import torch

        torch.set_num_threads(args.threads)
        a, b = np.random.default_rng(0).random((2, n, n), dtype=np.float32)
        self.name, self.flop = lib, 2 * n**3
        if lib.startswith("torch"):
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            self.fn = lambda: ta @ tb
        else:
            self.fn = lambda: a @ b

    def benchmark(self, inputs, *, warmup, repeat, max_seconds):
        from crosstune.runtime.timing import measure

        return measure(self.fn, None, warmup=warmup, repeat=repeat, max_seconds=max_seconds)


FMA_C = r"""
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
/* Independent fused multiply-add chains in registers, one set per thread: the cores' fp32 FMA
   throughput, which no program doing fp32 multiply-adds can pass. */
#ifdef __AVX512F__
typedef __m512 V; enum { LANES = 16 };
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define SUM _mm512_reduce_add_ps
#else
typedef __m256 V; enum { LANES = 8 };
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
static float SUM(V v) { float f[8]; _mm256_storeu_ps(f, v); return f[0]+f[1]+f[2]+f[3]+f[4]+f[5]+f[6]+f[7]; }
#endif
int main(void) {
  const long steps = 50000000; float sink = 0; double t0 = omp_get_wtime();
  #pragma omp parallel reduction(+:sink)
  {
    V a[12], b = SET1(1.0000001f), c = SET1(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = SET1((float)i);
    for (long k = 0; k < steps; k++) {
      #pragma GCC unroll 12
      for (int i = 0; i < 12; i++) a[i] = FMA(a[i], b, c);
    }
    for (int i = 0; i < 12; i++) sink += SUM(a[i]);
  }
  double t = omp_get_wtime() - t0;
  printf("%f %g\n", omp_get_max_threads() * 12.0 * steps * LANES * 2 / t / 1e9, sink);
  return 0;
}
"""


def fma_peak(work: Path, threads: int, runs: int = 3) -> float:
    """GFLOP/s of `FMA_C` on `threads` threads (the best of `runs`), built with the system's cc for
    this CPU (AVX-512 where it has it, else AVX2+FMA)."""
    import subprocess

    src, exe = work / "fma_peak.c", work / "fma_peak"
    src.write_text(FMA_C)
    subprocess.run(["cc", "-O2", "-march=native", "-fopenmp", str(src), "-o", str(exe)], check=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_PROC_BIND": "spread"}
    return max(float(subprocess.run([str(exe)], env=env, check=True, capture_output=True, text=True).stdout.split()[0])
               for _ in range(runs))


def winograd_saving(path: Path) -> int:
    """Multiply-adds that Winograd F(4x4, 3x3) would save if every 3x3 stride-1 dense convolution ran
    as Winograd (36 element-wise products per 4x4 tile instead of 144: 3/4 of their multiply-adds),
    ignoring its transforms and tile padding: a lower bound on the work any build of ours must do."""
    g, shapes = graph_shapes(path)
    saved = 0
    for node in g.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: (list(a.ints) if a.ints else a.i) for a in node.attribute}
        w, out = shapes.get(node.input[1]), shapes.get(node.output[0])
        if not w or not out or w[2:] != [3, 3] or attrs.get("group", 1) != 1:
            continue
        if any(x != 1 for x in attrs.get("strides", [1, 1]) + attrs.get("dilations", [1, 1])):
            continue
        size = 1
        for d in out:
            size *= d
        saved += size * w[1] * 9 * 3 // 4
    return saved


def multiply_adds(path: Path) -> int:
    """Multiply-adds of the graph's Conv, Gemm and MatMul nodes (shapes from ONNX shape inference)."""
    g, shapes = graph_shapes(path)
    total = 0
    for node in g.node:
        out = shapes.get(node.output[0])
        if not out or not all(out):
            continue
        size = 1
        for d in out:
            size *= d
        if node.op_type == "Conv":
            w = shapes[node.input[1]]  # (M, C/group, kh, kw)
            k = 1
            for d in w[1:]:
                k *= d
            total += size * k
        elif node.op_type in ("Gemm", "MatMul"):
            a = shapes[node.input[0]]
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            total += size * (a[0] if trans_a and node.op_type == "Gemm" else a[-1])
    return total


def cell(ms: float, gflop: float, peak: float) -> str:
    rate = gflop / (ms / 1e3)
    return f"{ms:.2f} ms {rate:.0f} ({100 * rate / peak:.0f}%)"


def main() -> int:
    import crosstune
    from crosstune import zoo
    from crosstune.compare import CrosstuneEngine
    from crosstune.compare.engine import benchmark_rounds
    from crosstune.compare.onnxruntime import OnnxRuntimeEngine
    from crosstune.compare.peers import OpenVinoEngine
    from crosstune.targets import host
    from crosstune.textfmt import table

    preset = host.detect().preset
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "crosstune-roofline"
    work.mkdir(exist_ok=True)
    rows, peaks, fmas = [], {}, []
    for name in args.models.split(","):
        onnx_path = work / f"{name}.onnx"
        zoo.export(name, onnx_path)
        gflop = 2 * multiply_adds(onnx_path) / 1e9
        gflop_wino = gflop - 2 * winograd_saving(onnx_path) / 1e9
        res = crosstune.compile(onnx_path, target="host", output=work / f"{name}.ctm")
        ct = CrosstuneEngine(crosstune.load(res.package, threads=args.threads))
        inputs = ct.compiled.example_inputs(seed=0)
        engines = [ct, OnnxRuntimeEngine(onnx_path.read_bytes(), threads=args.threads),
                   OpenVinoEngine(onnx_path, args.threads), GemmPeak("numpy (OpenBLAS)"), GemmPeak("torch (oneDNN/MKL)")]
        fmas.append(fma_peak(work, args.threads))
        stats = benchmark_rounds(engines, inputs, rounds=args.rounds, warmup=3, repeat=args.repeat, max_seconds=20)
        fmas.append(fma_peak(work, args.threads))
        fma = max(fmas[-2:])
        med = {}
        for e, st in zip(engines, stats):
            if isinstance(st, BaseException):
                raise st
            med[e.name] = st.median_ms
        peak = max(e.flop / (med[e.name] / 1e3) / 1e9 for e in engines if isinstance(e, GemmPeak))
        for e in engines:
            if isinstance(e, GemmPeak):
                peaks.setdefault(e.name, []).append(e.flop / (med[e.name] / 1e3) / 1e9)
        best_peer = min(med["onnxruntime"], med["openvino"])
        goal_ms = best_peer / GOAL[name]
        rows.append([name, f"{gflop:.2f}", f"{gflop_wino:.2f}", f"{peak:.0f}", f"{fma:.0f}",
                     *[cell(med[n], gflop, peak) for n in ("crosstune", "onnxruntime", "openvino")],
                     cell(goal_ms, gflop, peak),
                     f"{100 * gflop / (goal_ms / 1e3) / fma:.0f}% / {100 * gflop_wino / (goal_ms / 1e3) / fma:.0f}%"])
    text = table(["MODEL", "GFLOP", "WINOGRAD", "PEAK GFLOP/S", "FMA PEAK", "CROSSTUNE", "ONNX RUNTIME", "OPENVINO",
                  "GOAL NEEDS", "GOAL / FMA PEAK"], rows)
    text += ("\neach cell: median latency, effective GFLOP/s (2 x multiply-adds of Conv/Gemm/MatMul / latency), "
             "share of PEAK\n"
             f"PEAK: the best fp32 3072x3072 GEMM on {args.threads} threads, timed in the same {args.rounds} rounds as the "
             "engines (taking turns): " + ", ".join(f"{k} {min(v):.0f}-{max(v):.0f}" for k, v in peaks.items()) + " GFLOP/s\n"
             f"FMA PEAK: 12 independent fp32 fused multiply-add chains per thread in registers on {args.threads} threads "
             f"(cc -march=native), before and after each model's rounds: {min(fmas):.0f}-{max(fmas):.0f} GFLOP/s; "
             "no fp32 program can do multiply-adds faster\n"
             "WINOGRAD: GFLOP if every 3x3 stride-1 dense convolution ran as Winograd F(4x4, 3x3) (1/4 of its "
             "multiply-adds; transforms and tile padding not counted)\n"
             "GOAL NEEDS: 1.25x faster than the best of ONNX Runtime and OpenVINO (ResNet-50, MobileNetV2), "
             "no slower (encoder); above 100% cannot be met by computing every multiply-add (direct convolution)\n"
             "GOAL / FMA PEAK: the GFLOP/s the goal needs as a share of FMA PEAK, computing every multiply-add / "
             "with WINOGRAD's count\n"
             f"crosstune: the stored records of logs/{preset}/; machine: {host.detect().model}, "
             f"{os.cpu_count()} cores ({preset}); {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
    (RESULTS / f"cpu_roofline-{preset}.txt").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
