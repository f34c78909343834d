"""Export of the torch-defined zoo models to ONNX, with seeded weights."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

OPSET = 17


def _seeded(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give BatchNorm layers seeded, non-trivial statistics (default ones make BN an identity,
    which would hide BN folding bugs), then switch to inference mode."""
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) * 0.4 + 0.8)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return module.eval()


def build(name: str, seed: int = 0):
    """(module, example args, input names, output names) for a torch zoo model."""
    torch.manual_seed(seed)
    if name == "resnet50":
        from .vision import ResNet50

        return _seeded(ResNet50(), seed), ["input"], ["logits"]
    if name == "mobilenetv2":
        from .vision import MobileNetV2

        return _seeded(MobileNetV2(), seed), ["input"], ["logits"]
    if name == "encoder":
        from .encoder import Encoder

        return _seeded(Encoder(), seed), ["input_ids", "attention_mask"], ["last_hidden_state"]
    raise KeyError(name)


def example_args(name: str, batch: int, seq_len: int = 128):
    if name == "encoder":
        ids = torch.randint(0, 30522, (batch, seq_len), generator=torch.Generator().manual_seed(0))
        return (ids, torch.ones(batch, seq_len, dtype=torch.int64))
    return (torch.randn(batch, 3, 224, 224),)


def export(name: str, output: Path, *, batch: int = 1, seed: int = 0, dynamic_batch: bool = False) -> None:
    module, input_names, output_names = build(name, seed)
    args = example_args(name, batch)
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {n: {0: "batch"} for n in input_names + output_names}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns that it is deprecated; it is the one that needs no
        # onnxscript and gives plain opset-17 graphs.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(output),
            input_names=input_names,
            output_names=output_names,
            opset_version=OPSET,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            dynamo=False,
        )
    # Mark the file as this zoo model and seed: `crosstune bench` rebuilds the same torch module
    # from it to time PyTorch on the same weights.
    import onnx

    from . import SEED_KEY, ZOO_KEY

    model = onnx.load(str(output))
    onnx.helper.set_model_props(model, {ZOO_KEY: name, SEED_KEY: str(seed)})
    onnx.save(model, str(output))

