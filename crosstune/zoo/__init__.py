"""The model zoo: models to try crosstune on without bringing one.

- torch-defined, seeded (needs the `torch` extra): ResNet-50, MobileNetV2, a BERT-style encoder
  (4 layers, hidden 256, 4 heads, sequence 128);
- the real model-zoo graphs the onnx package ships, with seeded random weights (no torch needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

TORCH_MODELS = {
    "resnet50": ("ResNet-50 (torchvision architecture), ImageNet classifier", "input 1x3x224x224 float32"),
    "mobilenetv2": ("MobileNetV2 (torchvision architecture), ImageNet classifier", "input 1x3x224x224 float32"),
    "encoder": (
        "BERT-style encoder: 4 layers, hidden 256, 4 heads, vocab 30522",
        "input_ids 1x128 int64, attention_mask 1x128 int64",
    ),
}


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    inputs: str
    source: str  # "torch" or "onnx"


ZOO_KEY, SEED_KEY = "crosstune.zoo", "crosstune.zoo.seed"  # metadata_props of exported torch zoo models


def zoo_origin(model_proto) -> tuple[str, int] | None:
    """(zoo name, seed) of an ONNX model exported from the torch zoo, else None."""
    props = {p.key: p.value for p in model_proto.metadata_props}
    if ZOO_KEY not in props:
        return None
    return props[ZOO_KEY], int(props.get(SEED_KEY, "0"))


def entries() -> list[ZooEntry]:
    out = [ZooEntry(n, d, i, "torch") for n, (d, i) in TORCH_MODELS.items()]
    from . import onnx_light

    for n in onnx_light.names():
        out.append(
            ZooEntry(f"light-{n}", f"{n} from the onnx package's test data, seeded random weights",
                     "1x3x224x224 float32", "onnx")
        )
    return out


def get(name: str) -> ZooEntry:
    for e in entries():
        if e.name == name:
            return e
    raise UserError(f"unknown zoo model '{name}'; the zoo has: {', '.join(e.name for e in entries())}")


def export(name: str, output: str | Path, *, batch: int = 1, seed: int = 0, dynamic_batch: bool = False) -> Path:
    """Write zoo model `name` as ONNX to `output`; returns the path."""
    entry = get(name)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if entry.source == "onnx":
        if batch != 1 or dynamic_batch:
            raise UserError(f"zoo model '{name}' is fixed at batch 1")
        from . import onnx_light

        onnx_light.export(name.removeprefix("light-"), output, seed)
        return output
    if batch < 1:
        raise UserError("--batch must be >= 1")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UserError(
            f"zoo model '{name}' is defined in PyTorch, which is not installed: "
            "pip install 'crosstune[torch]'"
        ) from None
    from . import torch_models

    torch_models.export(name, output, batch=batch, seed=seed, dynamic_batch=dynamic_batch)
    return output
