"""The one registry of models: CLI choices, weight files and bundle model ids all come from here.

A bundle names each region's model by its registry name and the SHA-256 of the weights that
coded it; a decoder refuses weights whose hash differs (design: "decodable anywhere").
"""
from __future__ import annotations

import hashlib
import importlib
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from edge.errors import ModelError

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class ModelSpec:
    name: str            # registry name, written into bundles
    kind: str            # "lossy", "lossless", "segmentation", "implicit-roi"
    weights_file: str    # file name under edge/weights/
    loader: str          # "module:function" taking (weights_path) and returning the model

    @property
    def weights_path(self) -> Path:
        return WEIGHTS_DIR / self.weights_file


# One entry per shipped model. Bundles store these names: never rename or reuse one.
MODELS: dict[str, ModelSpec] = {
    "hp-easn": ModelSpec("hp-easn", "lossy", "hp_easn.pt", "edge.codec.lossy.weights:load_coder"),
    "bunetv2": ModelSpec("bunetv2", "segmentation", "bunetv2.pt", "edge.segment.unet:load_weights"),
    "bunetv2-lite0": ModelSpec("bunetv2-lite0", "segmentation", "bunetv2_lite0.pt", "edge.segment.effnet:load_weights"),
    "bitswap": ModelSpec("bitswap", "lossless", "bitswap.pt", "edge.codec.bitswap.coder:load_weights"),
    "implicit-roi": ModelSpec("implicit-roi", "implicit-roi", "implicit_roi.pt", "edge.codec.implicit.weights:load_coder"),
}


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS)) or "none"
        raise ModelError(f"unknown model {name!r} (known: {known})") from None


def models_of_kind(kind: str) -> list[str]:
    return sorted(name for name, spec in MODELS.items() if spec.kind == kind)


@lru_cache(maxsize=None)
def weights_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise ModelError(f"cannot read weights {path}: {error.strerror}; reinstall the package") from None


def write_weights_file(payload: dict, path: Path) -> str:
    """Save a weights payload to ``path`` atomically; the file's SHA-256.

    Saved through a buffer: torch.save names the zip archive inside after the file it writes
    to, so exporting the same weights to another file name would change their hash.
    """
    import torch   # ~1.5 s to import, and of the registry only writing weights needs it

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def fp16_weights(state: dict) -> dict:
    """A state dict with its floating-point tensors in fp16 (how weights are shipped and returned
    from a GPU lease); integer counters as they are."""
    return {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}


def float_state(state: dict) -> dict:
    """A state dict with its floating-point tensors in float32 (shipped fp16 weights as a model
    runs, trains and averages them); integer counters as they are."""
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def load_model(name: str, expected_sha256: str | None = None):
    """Load a registered model; with ``expected_sha256`` refuse weights that differ."""
    spec = get_spec(name)
    if not spec.weights_path.exists():
        raise ModelError(
            f"weights for model {name!r} not found at {spec.weights_path}; "
            f"train them (edge train) or reinstall the package"
        )
    digest = weights_sha256(spec.weights_path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ModelError(
            f"model {name!r}: the bundle was coded with weights {expected_sha256[:12]}…, "
            f"these are {digest[:12]}…; decode with the package version that coded it"
        )
    return _loader(spec)(spec.weights_path)


def load_weights_file(name: str, path: Path):
    """Model ``name``'s loader applied to another weights file (candidate or test weights): no hash check."""
    return _loader(get_spec(name))(Path(path))


def _loader(spec: ModelSpec):
    # Named, not imported: the loaders live in edge.codec and edge.segment, which import this module.
    module_name, function_name = spec.loader.split(":")
    return getattr(importlib.import_module(module_name), function_name)
