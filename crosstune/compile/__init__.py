"""ONNX -> Relax -> the target's pipeline -> a `.ctm` package.

One module per concern: `onnx_model` (load, check, pin shapes), `inspect` (what a model holds and
what TVM can convert), `relax_import` (TVM's frontend plus crosstune's checks), `pipeline` (the
passes and the build), `link` (the target's C compiler), `package` (the artifact), `driver` (the
whole compile). Importing this package imports neither TVM nor ONNX.

This module is callable: `crosstune.compile("m.onnx", target="host")` is the public API, and
`crosstune.compile` is also this package (a function of that name would be replaced by the package
the first time any of its modules is imported).
"""

import sys
import types

from .options import CompileOptions, CompileResult


def compile_model(model, options: CompileOptions | None = None, progress=None) -> CompileResult:
    """Compile an ONNX model (path or ModelProto) into a package; see `CompileOptions`.
    `progress(stage)`, if given, is called as each stage starts."""
    from .driver import compile_model as _impl

    return _impl(model, options or CompileOptions(), progress or (lambda _stage: None))


class _CallableModule(types.ModuleType):
    def __call__(self, model, target: str = "host", output: str | None = None, **options) -> CompileResult:
        """Compile an ONNX model (path or ModelProto) for `target` into a `.ctm` package.
        Keyword options are those of `CompileOptions`."""
        return compile_model(model, CompileOptions(target=target, output=output, **options))


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["CompileOptions", "CompileResult", "compile_model"]
