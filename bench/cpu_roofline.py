"""How close each CPU engine runs to this machine's fp32 GEMM peak, and what the issue-3 goal asks.

    python bench/cpu_roofline.py [--models resnet50,mobilenetv2,encoder] [--threads 2]

Measures the best fp32 matrix-product throughput this machine reaches on `--threads` threads
(PyTorch's matmul, which uses oneDNN/MKL, and NumPy's OpenBLAS, square products of 1024-4096: the
best of both is "peak"), counts each zoo model's multiply-adds from its ONNX graph (Conv, Gemm,
MatMul, after shape inference), and reads the engines' median latencies from the committed
`bench/results/cpu_vs_peers-<preset>.<model>.results.json` of this CPU class (run
`bench/cpu_vs_peers.py` first, on this machine, with nothing else running). Prints each engine's
effective GFLOP/s (2 x multiply-adds / latency) as a share of peak, and the latency and share of
peak that the goal needs (1.25x faster than the best of ONNX Runtime and OpenVINO for the CNNs,
no slower for the encoder). A goal above 100% of peak cannot be met by computing every
multiply-add (direct convolution); only an algorithm with fewer of them (Winograd) could.
Writes the table to bench/results/cpu_roofline-<preset>.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--models", default="resnet50,mobilenetv2,encoder")
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TVM_NUM_THREADS"):
    os.environ[var] = str(args.threads)

from _common import RESULTS  # noqa: E402 - bench/ is on sys.path

GOAL = {"resnet50": 1.25, "mobilenetv2": 1.25, "encoder": 1.0}


def gemm_peak(threads: int) -> dict[str, float]:
    """Best GFLOP/s of square fp32 products, per library."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    best: dict[str, float] = {}
    for n in (1024, 2048, 3072, 4096):
        a, b = np.random.default_rng(0).random((2, n, n), dtype=np.float32)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        for lib, f in (("numpy (OpenBLAS)", lambda: a @ b), ("torch (oneDNN/MKL)", lambda: ta @ tb)):
            f()
            times = []
            for _ in range(5 if n < 4096 else 3):
                t = time.perf_counter()
                f()
                times.append(time.perf_counter() - t)
            best[lib] = max(best.get(lib, 0.0), 2 * n**3 / min(times) / 1e9)
    return best


def multiply_adds(path: Path) -> int:
    """Multiply-adds of the graph's Conv, Gemm and MatMul nodes (shapes from ONNX shape inference)."""
    import onnx
    from onnx import shape_inference

    m = shape_inference.infer_shapes(onnx.load(str(path)))
    g = m.graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*g.input, *g.output, *g.value_info]}
    shapes.update({t.name: list(t.dims) for t in g.initializer})
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
    from crosstune import zoo
    from crosstune.targets import host

    preset = host.detect().preset
    peak = gemm_peak(args.threads)
    top = max(peak.values())
    rows, notes = [], []
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "crosstune-roofline"
    work.mkdir(exist_ok=True)
    for name in args.models.split(","):
        doc_path = RESULTS / f"cpu_vs_peers-{preset}.{name}.results.json"
        if not doc_path.is_file():
            notes.append(f"{name}: no {doc_path.name}; run bench/cpu_vs_peers.py here first")
            continue
        doc = json.loads(doc_path.read_text())
        onnx_path = work / f"{name}.onnx"
        if not onnx_path.is_file():
            zoo.export(name, onnx_path)
        gflop = 2 * multiply_adds(onnx_path) / 1e9
        med = {e["name"]: e["latency_ms"]["median"] for e in doc["engines"] if e.get("latency_ms")}
        best_peer = min(med[n] for n in ("onnxruntime", "openvino") if n in med)
        goal_ms = best_peer / GOAL[name]
        cells = [name, f"{gflop:.2f}"]
        for n in ("crosstune", "onnxruntime", "openvino", "torch"):
            cells.append(cell(med[n], gflop, top) if n in med else "n/a")
        cells.append(cell(goal_ms, gflop, top))
        rows.append(cells)
    from crosstune.textfmt import table

    text = table(["MODEL", "GFLOP", "CROSSTUNE", "ONNX RUNTIME", "OPENVINO", "TORCH", "GOAL NEEDS"], rows)
    text += ("\neach cell: median latency, effective GFLOP/s (2 x multiply-adds of Conv/Gemm/MatMul / latency), "
             "share of peak\n"
             f"peak: best fp32 GEMM on {args.threads} threads: "
             + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items())
             + f"\nGOAL NEEDS: 1.25x faster than the best of ONNX Runtime and OpenVINO (ResNet-50, MobileNetV2), "
               "no slower (encoder); above 100% cannot be met by direct convolution\n"
             f"latencies from bench/results/cpu_vs_peers-{preset}.<model>.results.json "
             f"({doc.get('created', '?') if rows else '?'}); machine: {doc['machine']['cpu'] if rows else '?'}, "
             f"{os.cpu_count()} cores ({preset})\n" + "".join(n + "\n" for n in notes))
    (RESULTS / f"cpu_roofline-{preset}.txt").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
