"""Names and validity of the files `edge engines build` writes (ONNX graphs, TensorRT engines).

Every artifact's file name carries what it was built from, so a changed model, weights, input
shape, TensorRT version, GPU or precision simply names another file (a rebuild), and an old
file is never picked up by mistake::

    engines/hp-easn.g_a.w3f9a0c12d4e5.p256.onnx
    engines/hp-easn.g_a.w3f9a0c12d4e5.p256.trt10.3.0.orin.fp16.engine
    engines/timing.trt10.3.0.orin.cache          (TensorRT timing cache, shared by builds)

Next to each artifact a ``.json`` sidecar records the same facts in full (the whole weights
fingerprint, the shapes, the SHA-256 of the artifact itself); :func:`check_artifact` compares
it with what the caller expects and re-hashes the file, so a truncated or edited file is
refused too.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from edge.runtime.networks import Network, NetworkGroup

META_FORMAT = "edge-engine-meta-v1"
PRECISIONS = ("fp16", "fp32")


def default_engines_folder() -> Path:
    """``engines/`` of the checkout the package runs from (installs are editable, see deploy/)."""
    return Path(__file__).resolve().parents[2] / "engines"


def slug(text: str) -> str:
    """A file-name-safe lower-case form of a device or version name ("NVIDIA Orin" -> "nvidia-orin")."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "unknown"


@dataclass(frozen=True)
class EngineTarget:
    """What a TensorRT engine is specific to: it runs only where all three match."""

    tensorrt: str      # TensorRT version, e.g. "10.3.0"
    gpu: str           # CUDA device name, e.g. "Orin"
    precision: str     # "fp16" or "fp32"

    @property
    def tag(self) -> str:
        return f"trt{slug(self.tensorrt)}.{slug(self.gpu)}.{self.precision}"


def _stem(group: NetworkGroup, network: Network) -> str:
    return f"{group.model}.{network.spec.name}.w{network.fingerprint[:12]}.{network.spec.shape_tag}"


def onnx_path(folder: Path, group: NetworkGroup, network: Network) -> Path:
    return Path(folder) / f"{_stem(group, network)}.onnx"


def engine_path(folder: Path, group: NetworkGroup, network: Network, target: EngineTarget) -> Path:
    return Path(folder) / f"{_stem(group, network)}.{target.tag}.engine"


def timing_cache_path(folder: Path, target: EngineTarget) -> Path:
    return Path(folder) / f"timing.trt{slug(target.tensorrt)}.{slug(target.gpu)}.cache"


def meta_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".json")


def expected_meta(group: NetworkGroup, network: Network, target: EngineTarget | None = None) -> dict:
    """The sidecar fields an artifact of this network must have (TensorRT fields with a target)."""
    meta = {"format": META_FORMAT, "model": group.model, "network": network.spec.name,
            "weights_fingerprint": network.fingerprint, "shapes": network.spec.describe()}
    if target is not None:
        meta.update({"tensorrt": target.tensorrt, "gpu": target.gpu, "precision": target.precision})
    return meta


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_artifact(path: Path, data: bytes, meta: dict) -> None:
    """Write an artifact and its sidecar atomically (the sidecar last: it marks the file complete)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, data)
    record = dict(meta, file_sha256=hashlib.sha256(data).hexdigest(),
                  created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    _write_atomically(meta_path(path), json.dumps(record, indent=1, sort_keys=True).encode())


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def read_meta(path: Path) -> dict | None:
    try:
        return json.loads(meta_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check_artifact(path: Path, expected: dict) -> str | None:
    """None if ``path`` is a complete artifact built as ``expected`` says; else what is wrong."""
    path = Path(path)
    if not path.is_file():
        return f"{path.name} is missing"
    meta = read_meta(path)
    if meta is None:
        return f"{path.name} has no readable {meta_path(path).name} (interrupted build?)"
    for key, value in expected.items():
        if meta.get(key) != value:
            return f"{path.name} was built for {key}={meta.get(key)!r}, not {value!r}"
    if meta.get("file_sha256") != file_sha256(path):
        return f"{path.name} does not match the SHA-256 its sidecar records (damaged or edited)"
    return None


def stale_artifacts(folder: Path, current: set[Path]) -> list[Path]:
    """ONNX files and engines in ``folder`` that no current model/target would use."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.suffix in (".onnx", ".engine")]
    return sorted(p for p in found if p.resolve() not in {c.resolve() for c in current})
