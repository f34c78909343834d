"""NCHW against NHWC convolutions: the same tuning budget, one kernel at a time, on this CPU.

    python bench/conv_layouts.py [--trials 64] [--target host] [--out bench/results/conv_layouts-<preset>.txt]

Five single-convolution models (Conv + bias + ReLU, ResNet-50's and MobileNetV2's shapes at batch 1)
are tuned with `crosstune tune --layout L --trials-per-task N --no-baseline` into a fresh store per
model and layout, one after the other (nothing else should run: CPU timings are the tuner's own
measurements). Prints each convolution's best time in both layouts and their ratio (>1: NHWC faster).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SHAPES = [  # name, in channels, out channels, size, kernel, groups
    ("3x3 256->256 14x14", 256, 256, 14, 3, 1),
    ("3x3 512->512 7x7", 512, 512, 7, 3, 1),
    ("1x1 1024->256 14x14", 1024, 256, 14, 1, 1),
    ("3x3 64->64 56x56", 64, 64, 56, 3, 1),
    ("3x3 depthwise 384 14x14", 384, 384, 14, 3, 384),
]


def conv_model(c: int, k: int, hw: int, ks: int, group: int) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((k, c // group, ks, ks)) * 0.05).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(k).astype(np.float32), "B")
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], kernel_shape=[ks, ks], pads=[ks // 2] * 4, group=group),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, k, hw, hw])], [w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def best_conv_ms(stdout: str) -> float:
    m = re.search(r"^fused_conv2d\S*\s+\d+\s+\d+\s+\d+\s+\d+\s+([\d.]+) (ms|us)", stdout, re.MULTILINE)
    if not m:
        raise SystemExit("no convolution row in the tuner's table:\n" + stdout)
    return float(m[1]) / (1000.0 if m[2] == "us" else 1.0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--target", default="host")
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="crosstune-layouts-") as tmp:
        for name, c, k, hw, ks, group in SHAPES:
            path = Path(tmp) / "conv.onnx"
            onnx.save(conv_model(c, k, hw, ks, group), path)
            got = {}
            for layout in ("NCHW", "NHWC"):
                proc = subprocess.run(
                    [sys.executable, "-m", "crosstune", "tune", str(path), "--target", args.target, "--layout", layout,
                     "--trials-per-task", str(args.trials), "--no-baseline", "--db", f"{tmp}/{layout}-{c}-{k}-{hw}-{ks}"],
                    capture_output=True, text=True, check=True)
                got[layout] = best_conv_ms(proc.stdout)
            rows.append((name, got["NCHW"], got["NHWC"]))
            print(f"{name:26s} NCHW {got['NCHW']:8.4f} ms  NHWC {got['NHWC']:8.4f} ms  {got['NCHW'] / got['NHWC']:.2f}x", flush=True)
    from crosstune import targets
    from crosstune.targets import host

    t = targets.get(args.target)
    cpu = host.detect()
    lines = [f"conv_layouts: {args.trials} trials per convolution and layout, target {t.name} "
             f"({t.detected or t.describe_tvm()}), CPU {cpu.model}",
             f"{'CONVOLUTION':26s} {'NCHW ms':>9s} {'NHWC ms':>9s}  NCHW/NHWC"]
    lines += [f"{n:26s} {a:9.4f} {b:9.4f}  {a / b:.2f}x" for n, a, b in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
