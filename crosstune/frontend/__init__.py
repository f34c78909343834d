"""crosstune's ONNX converter layer over TVM's Relax ONNX frontend.

- `registry`: the table of crosstune's converters (operator, domain, opset range, family) and
  `coverage`, which says who converts an operator at an opset: crosstune, TVM, or nothing;
- `importer`: TVM's graph importer subclassed to consult that table first (and to feed shape
  values to operators as tensors, keep small initializers and bound inputs constant, and convert
  Loop/Scan bodies);
- `constants`: the inputs TVM needs as constants, `--bind`, and ONNX-level constant folding;
- `ops/`: the converters, one module per operator family.
"""
