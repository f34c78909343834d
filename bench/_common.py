"""What every CPU benchmark script shares: run the zoo models one after another in a scratch
folder, and write one results document per model (crosstune's results format, see
docs/results-format.md) to bench/results/, where `crosstune report` reads them."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).parent / "results"


def run_models(models: str, bench_model: Callable[[str, Path], dict]) -> list[dict]:
    """`bench_model(name, workdir)` for each comma-separated model, in one scratch folder."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models.split(","):
            print(f"{name} ...", flush=True)
            rows.append(bench_model(name, Path(tmp)))
    return rows


def document(info, inputs: dict, engines: list[dict]) -> dict:
    """The results document of one model timed on this machine; `info` is the crosstune package's
    metadata (model digest, target), ONNX Runtime the reference every engine is checked against."""
    from crosstune.report import results

    return results.new_document(
        model=results.model_info(info, inputs), target=results.target_info(info.target),
        command=[Path(sys.executable).name, *sys.argv], reference="onnxruntime", engines=engines,
    )


def write_documents(stem: str, docs: list[dict]) -> list[Path]:
    """bench/results/<stem>.<model>.results.json for each document."""
    from crosstune.report import results

    return [results.write(RESULTS / f"{stem}.{d['model']['name']}.results.json", d) for d in docs]


def median(doc: dict, engine: str) -> float | None:
    """An engine's median in a document, None when it was not timed."""
    e = next((e for e in doc["engines"] if e["name"] == engine), None)
    return e["latency_ms"]["median"] if e is not None and e["status"] == "ok" else None


def graph_shapes(path: Path):
    """(graph, {value or initializer name: shape}) of an ONNX file, after ONNX shape inference."""
    import onnx
    from onnx import shape_inference

    g = shape_inference.infer_shapes(onnx.load(str(path))).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in [*g.input, *g.output, *g.value_info]}
    shapes.update({t.name: list(t.dims) for t in g.initializer})
    return g, shapes
