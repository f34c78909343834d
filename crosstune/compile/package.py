"""The deployable artifact (`.ctm`): one zip file holding the compiled library, the weights and a
metadata JSON. It is all `crosstune run` needs: the ONNX file is not read again.

    metadata.json   format version, crosstune and TVM versions, model digest, inputs/outputs,
                    target, weights, build facts, and the sha256 of lib.so and weights.params
    lib.so          the library `export_library` linked with the target's compiler
    weights.params  TVM's parameter format (every dtype TVM has), keys "0".."N-1" in call order

The library is native code that `run` loads or uploads to a board (whose RPC server runs whatever it is
sent), so `read` checks both digests first and refuses a package whose files were altered or swapped.

Written to a temporary file and renamed into place, so an interrupted compile never leaves a
half-written artifact where a good one was.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..tensors import TensorSpec

FORMAT = "crosstune-package"
FORMAT_VERSION = 2  # 2: digests of the library and weights (required)
OLDEST_VERSION = 2
METADATA = "metadata.json"
LIBRARY = "lib.so"
WEIGHTS = "weights.params"


@dataclass
class PackageInfo:
    """What metadata.json says. `target` is `Target.to_json()`; `build` holds timings and tuning state."""

    crosstune_version: str
    tvm_version: str
    created: str
    model: dict[str, Any]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    target: dict[str, Any]
    weights: dict[str, Any]
    build: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    digests: dict[str, str] = field(default_factory=dict)  # file name in the zip -> sha256 (set by `write`)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "crosstune_version": self.crosstune_version,
            "tvm_version": self.tvm_version,
            "created": self.created,
            "model": self.model,
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
            "target": self.target,
            "weights": self.weights,
            "build": self.build,
            "sha256": self.digests,
        }

    @classmethod
    def from_json(cls, d: Any, where: str) -> "PackageInfo":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise UserError(f"{where}: corrupt metadata (not a {FORMAT} metadata object)")
        version = d.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise UserError(
                f"{where}: package format version {version!r}; this crosstune reads up to "
                f"{FORMAT_VERSION}: upgrade crosstune or recompile the model"
            )
        if version < OLDEST_VERSION:
            raise UserError(
                f"{where}: package format version {version} (made by an older crosstune, without "
                "file digests): recompile the model with `crosstune compile`"
            )
        try:
            return cls(
                crosstune_version=str(d["crosstune_version"]),
                tvm_version=str(d["tvm_version"]),
                created=str(d["created"]),
                model=dict(d["model"]),
                inputs=[TensorSpec.from_json(x) for x in d["inputs"]],
                outputs=[TensorSpec.from_json(x) for x in d["outputs"]],
                target=dict(d["target"]),
                weights=dict(d["weights"]),
                build=dict(d.get("build", {})),
                format_version=version,
                digests={str(k): str(v) for k, v in dict(d["sha256"]).items()},
            )
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"{where}: corrupt metadata (bad or missing field {err})") from None


def write(path: str | Path, info: PackageInfo, library: str | Path, weights: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info.digests = {LIBRARY: _sha256(Path(library).read_bytes()), WEIGHTS: _sha256(weights)}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w") as z:
            z.writestr(METADATA, json.dumps(info.to_json(), indent=2), zipfile.ZIP_DEFLATED)
            z.write(library, LIBRARY, zipfile.ZIP_DEFLATED)
            z.writestr(WEIGHTS, weights, zipfile.ZIP_STORED)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _open(path: str | Path) -> zipfile.ZipFile:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"no such file: {p}")
    try:
        z = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError) as err:
        raise UserError(f"{p} is not a crosstune package ({err})") from None
    names = set(z.namelist())
    missing = {METADATA, LIBRARY, WEIGHTS} - names
    if missing:
        z.close()
        raise UserError(f"{p} is not a complete crosstune package (missing {', '.join(sorted(missing))})")
    return z


def read_info(path: str | Path) -> PackageInfo:
    with _open(path) as z:
        return _info(z, path)


def _info(z: zipfile.ZipFile, path) -> PackageInfo:
    try:
        d = json.loads(z.read(METADATA).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise UserError(f"{path}: corrupt metadata ({err})") from None
    return PackageInfo.from_json(d, str(path))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(path: str | Path) -> tuple[PackageInfo, bytes, bytes]:
    """(metadata, library bytes, weights bytes), each file checked against its recorded digest."""
    with _open(path) as z:
        info = _info(z, path)
        try:
            lib, weights = z.read(LIBRARY), z.read(WEIGHTS)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:  # CRC, inflate, truncation
            raise UserError(f"{path} is damaged ({err})") from None
    for name, data in ((LIBRARY, lib), (WEIGHTS, weights)):
        if info.digests.get(name) != _sha256(data):
            raise UserError(
                f"{path}: {name} does not match the sha256 in its metadata (altered or swapped); "
                "refusing to load it"
            )
    return info, lib, weights
