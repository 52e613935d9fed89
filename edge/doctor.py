"""`edge doctor`: is this machine ready to code (and, given a config, to run the daemon)?

Probing lives here, never in config validation. One line per check::

    OK   python: 3.10.12
    WARN tensorrt: not installed ...
    FAIL weights hp-easn: missing ...

FAIL means the daemon cannot work as configured; WARN means it works, slower or with less
than it could. Checks never change anything: no export, no build, no MQTT session.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import platform
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ConfigError, EdgeError
from edge.registry import MODELS, load_model, weights_sha256

# Third-party packages, and the modules of edge that need them, are imported in the checks that use
# them: a check's import of the package it probes is its test of that package, and the rest (torch,
# pydantic, numpy) would take `edge doctor --help` from 0.1 s to 1.7 s.

OK, WARN, FAIL = "OK", "WARN", "FAIL"
CONSTRICTION_HOWTO = ("on aarch64 (Jetson) constriction 0.5.0 has no wheel and no source archive on PyPI: "
                      "build it from the git tag v0.5.0 with rustup and maturin, see deploy/JETSON.md")
# File systems whose changes inotify does not report (the watcher must poll them).
# Less free space than this is a full disk: the journal and the spool cannot write (the daemon waits).
DISK_FULL_BYTES = 64 << 10
NO_INOTIFY = {"fuse", "fuseblk", "exfat", "vfat", "msdos", "nfs", "nfs4", "cifs", "smb3", "9p", "sshfs"}


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str

    def __str__(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


def is_jetson() -> bool:
    return Path("/etc/nv_tegra_release").exists() or "tegra" in platform.release().lower()


def run_checks(config_path: Path | None = None, engines_folder: Path | None = None) -> list[Check]:
    """Every check, in order; ``config_path`` (edge or offshore YAML) adds mounts and broker."""
    checks = [check_python(), *check_torch_and_gpu()]
    for name, check in (("accelerators", check_accelerators), ("constriction", check_constriction),
                        ("classical codecs", check_classical_codecs), ("packages", check_packages),
                        ("libjpeg-turbo", check_turbojpeg), ("weights", check_weights)):
        checks += _guarded(name, check)
    config, runtime = None, None
    if config_path is not None:
        try:
            config, check = load_any_config(Path(config_path))
            runtime = getattr(config, "runtime", None)
        except ImportError as error:
            check = _missing_package("config", error)
        checks.append(check)
    checks += _guarded("backends", lambda: check_backends(runtime, engines_folder))
    if config is not None:
        checks += _guarded("mounts", lambda: check_mounts(config)) + _guarded("broker", lambda: check_broker(config.mqtt))
    return checks


def _guarded(name: str, check) -> list:
    """``check()``'s result as a list, or one FAIL line when a package it needs is missing: the
    doctor is what a user runs on a broken install, so it reports and goes on."""
    try:
        result = check()
    except ImportError as error:
        return [_missing_package(name, error)]
    return result if isinstance(result, list) else [result]


def _missing_package(name: str, error: ImportError) -> Check:
    return Check(name, FAIL, f"cannot check: {error.name or error} is not installed (see its own line)")


# -- software ------------------------------------------------------------------------------

def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info < (3, 10):
        return Check("python", FAIL, f"{version}: 3.10 or later is needed (JetPack 6 has 3.10)")
    return Check("python", OK, f"{version} ({sys.executable})")


def check_torch_and_gpu() -> list[Check]:
    try:
        import torch
    except ImportError:
        return [Check("torch", FAIL, "not installed (Jetson: NVIDIA's wheel, see deploy/JETSON.md)")]
    checks = [Check("torch", OK, f"{torch.__version__}, {torch.get_num_threads()} CPU threads")]
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        checks.append(Check("gpu", OK, f"{name}, CUDA {torch.version.cuda}"))
    elif is_jetson():
        checks.append(Check("gpu", FAIL, "this is a Jetson but PyTorch sees no CUDA device: the CPU build of "
                                         "torch is installed; install NVIDIA's wheel (deploy/JETSON.md)"))
    else:
        checks.append(Check("gpu", WARN, "no CUDA device: networks run on the CPU (PyTorch or ONNX Runtime)"))
    return checks


def _version(module_name: str) -> str | None:
    try:
        module = importlib.import_module(module_name)
    except Exception:           # a broken install may raise more than ImportError (missing .so)
        return None
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(module_name)
        except importlib.metadata.PackageNotFoundError:
            version = "installed"
    return str(version)


def check_accelerators() -> list[Check]:
    checks = []
    trt = _version("tensorrt")
    if trt:
        checks.append(Check("tensorrt", OK, trt))
    else:
        checks.append(Check("tensorrt", WARN, "not installed: no TensorRT engines (on a Jetson: JetPack's "
                                              "python3-libnvinfer and a venv with --system-site-packages)"))
    t2t = _version("torch2trt")
    checks.append(Check("torch2trt", OK, t2t if t2t else "not installed (optional: only for "
                                                          "`edge engines build --backend torch2trt`)"))
    onnx = _version("onnx")
    checks.append(Check("onnx", OK, onnx) if onnx else
                  Check("onnx", WARN, "not installed: `edge engines build` cannot export (pip install onnx)"))
    ort = _version("onnxruntime")
    if ort:
        import onnxruntime
        checks.append(Check("onnxruntime", OK, f"{ort}, providers {', '.join(onnxruntime.get_available_providers())}"))
    else:
        checks.append(Check("onnxruntime", WARN, "not installed: no ONNX Runtime backend (pip install onnxruntime)"))
    return checks


def check_classical_codecs() -> Check:
    """AVIF and JPEG XL (imagecodecs): the default background coder and the lossless blade's anchor."""
    try:
        import imagecodecs
    except ImportError:
        return Check("classical codecs", FAIL, "imagecodecs is not installed: pip install 'imagecodecs>=2024.1'")
    missing = [name for name in ("AVIF", "JPEGXL") if not getattr(imagecodecs, name).available]
    if missing:
        return Check("classical codecs", FAIL, f"imagecodecs {imagecodecs.__version__} lacks {', '.join(missing)}: "
                                               f"the avif / jxl region coders cannot run (deploy/JETSON.md)")
    return Check("classical codecs", OK, f"imagecodecs {imagecodecs.__version__}: AVIF and JPEG XL")


def check_constriction() -> Check:
    try:
        import constriction
        import numpy as np
    except ImportError:
        return Check("constriction", FAIL, f"not installed: nothing can be coded; {CONSTRICTION_HOWTO}")
    try:      # a real round trip: a wrongly built library fails here, not in the first photo
        coder = constriction.stream.stack.AnsCoder()
        model = constriction.stream.model.Categorical(np.array([0.25, 0.5, 0.25]), perfect=False)
        symbols = np.array([0, 1, 2, 1], dtype=np.int32)
        coder.encode_reverse(symbols, model)
        decoded = constriction.stream.stack.AnsCoder(coder.get_compressed()).decode(model, 4)
        assert np.array_equal(decoded, symbols)
    except Exception as error:
        return Check("constriction", FAIL, f"installed but an ANS round trip fails: {error}")
    return Check("constriction", OK, f"{_version('constriction')}, ANS round trip works")


def check_packages() -> Check:
    needed = {"cv2": "opencv-python-headless", "sklearn": "scikit-learn", "imagecodecs": "imagecodecs",
              "paho.mqtt": "paho-mqtt", "pydantic": "pydantic", "yaml": "pyyaml"}
    missing = [package for module, package in needed.items() if _version(module) is None]
    if missing:
        return Check("packages", FAIL, f"missing: {', '.join(missing)} (pip install them; aarch64 wheels exist)")
    return Check("packages", OK, ", ".join(sorted(needed.values())) + " importable")


def check_turbojpeg() -> Check:
    from edge.codec import turbojpeg   # imported here: numpy (see the note at the top)
    if not turbojpeg.available():
        return Check("libjpeg-turbo", WARN, "TurboJPEG library not found: --blade auto codes JPEG blades "
                     f"losslessly instead of keeping the camera's blocks (jpeg-exact); {turbojpeg.INSTALL_HINT}")
    return Check("libjpeg-turbo", OK, "TurboJPEG library loaded (jpeg-exact blade coder)")


def check_weights() -> list[Check]:
    if not MODELS:
        return [Check("weights", WARN, "no models registered")]
    checks = []
    for name, spec in sorted(MODELS.items()):
        path = spec.weights_path
        if not path.is_file():
            checks.append(Check(f"weights {name}", FAIL, f"missing: {path} (reinstall, or train: edge train)"))
            continue
        size = path.stat().st_size / 1e6
        checks.append(Check(f"weights {name}", OK, f"{path.name}, {size:.1f} MB, sha256 {weights_sha256(path)[:16]}"))
    return checks


# -- backends and engines -------------------------------------------------------------------

def check_backends(runtime=None, engines_folder: Path | None = None) -> list[Check]:
    """Which backend each shipped model would get now, and whether a better one is within reach."""
    # Imported here: torch (see the note at the top).
    from edge.runtime.artifacts import stale_artifacts
    from edge.runtime.networks import lossy_group, segmentation_group
    from edge.runtime.select import RuntimeSettings, engine_paths, onnx_paths, select_backend
    from edge.runtime.tensorrt import tensorrt_problem
    try:
        settings = RuntimeSettings.of(runtime)
        if engines_folder is not None:
            settings = dataclasses.replace(settings, engines_folder=Path(engines_folder))
    except EdgeError as error:
        return [Check("runtime", FAIL, str(error))]
    checks, current = [], set()
    trt_usable = tensorrt_problem() is None
    ort_usable = _version("onnxruntime") is not None
    for name, spec in sorted(MODELS.items()):
        if spec.kind not in ("lossy", "segmentation") or not spec.weights_path.is_file():
            continue
        try:
            model = load_model(name)
            group = lossy_group(model) if spec.kind == "lossy" else segmentation_group(model, name)
            selection = select_backend(group, settings)
        except EdgeError as error:
            checks.append(Check(f"backend {name}", FAIL, str(error)))
            continue
        current.update(_current_artifacts(group, settings, engine_paths, onnx_paths))
        kind = selection.backend.kind
        better_missing = ((trt_usable and kind != "tensorrt") or (ort_usable and kind == "torch")) \
            and settings.backend == "auto"
        advice = "; run edge engines build" if better_missing else ""
        checks.append(Check(f"backend {name}", WARN if better_missing else OK,
                            f"runtime.backend={settings.backend}: {selection.describe()}{advice}"))
    stale = stale_artifacts(settings.folder, current)
    if stale:
        checks.append(Check("engines", WARN, f"{len(stale)} artifacts in {settings.folder} match no current "
                                             f"model/weights/TensorRT/GPU (delete them or rebuild): "
                                             f"{', '.join(p.name for p in stale[:4])}{' ...' if len(stale) > 4 else ''}"))
    else:
        present = sorted(p.name for p in settings.folder.glob("*.engine")) if settings.folder.is_dir() else []
        checks.append(Check("engines", OK, f"{settings.folder}: {len(present)} TensorRT engines, no stale files"))
    return checks


def _current_artifacts(group, settings, engine_paths, onnx_paths) -> set[Path]:
    """Artifacts of ``group`` that are valid now (so not stale)."""
    found = set()
    for finder in (onnx_paths, engine_paths):
        try:
            found.update(finder(group, settings).values())
        except EdgeError:
            pass
    return found


# -- configuration, mounts, broker -----------------------------------------------------------

def load_any_config(path: Path):
    """An edge or offshore config, told apart by their sections; (config or None, check)."""
    # Imported here: pyyaml and pydantic (see the note at the top).
    import yaml

    from edge.config import load_edge_config, load_offshore_config
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        return None, Check("config", FAIL, f"{path}: cannot read: {error}")
    offshore = isinstance(data, dict) and "output" in data and "watch" not in data
    try:
        config = load_offshore_config(path) if offshore else load_edge_config(path)
    except ConfigError as error:
        return None, Check("config", FAIL, str(error).replace("\n", " | "))
    return config, Check("config", OK, f"{path} is a valid {'offshore' if offshore else 'edge'} config")


def mount_of(path: Path) -> tuple[str, str]:
    """(mount point, file system type) holding ``path`` (from /proc/mounts)."""
    path = Path(os.path.realpath(path))
    best = ("/", "?")
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return best
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        if (path == Path(point) or Path(point) in path.parents) and len(point) >= len(best[0]):
            best = (point, parts[2])
    return best


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_folder(name: str, path: Path, writable: bool, may_be_absent: bool = False) -> Check:
    if not path.exists():
        parent = _nearest_existing(path)
        if may_be_absent:
            return Check(name, WARN, f"{path} does not exist (yet): card not inserted or not mounted?")
        if writable and parent.is_dir() and os.access(parent, os.W_OK):
            return Check(name, OK, f"{path} will be created (in {parent})")
        return Check(name, FAIL, f"{path} does not exist and cannot be created in {parent}")
    point, fstype = mount_of(path)
    if writable and not os.access(path, os.W_OK):
        return Check(name, FAIL, f"{path} is not writable by this user")
    if not os.access(path, os.R_OK):
        return Check(name, FAIL, f"{path} is not readable by this user")
    free = shutil.disk_usage(path).free
    detail = f"{path} on {point} ({fstype}), {free / 2**30:.1f} GiB free"
    if writable and free < DISK_FULL_BYTES:
        return Check(name, FAIL, f"{path} on {point} ({fstype}): the disk is full ({free} bytes free); the daemon "
                                 f"waits (photos stay on the card) until space is freed or the disk is grown")
    if writable and free < 1 << 30:
        return Check(name, WARN, detail + ": less than 1 GiB")
    return Check(name, OK, detail)


def check_mounts(config) -> list[Check]:
    checks = []
    if hasattr(config, "watch"):
        for folder in config.watch.folders:
            check = check_folder("watch folder", folder, writable=False, may_be_absent=True)
            fstype = mount_of(folder)[1] if folder.exists() else "?"
            if check.status == OK and fstype in NO_INOTIFY and config.watch.observer == "inotify":
                check = Check("watch folder", WARN, f"{check.detail}: inotify gives no events on {fstype}; "
                                                    f"set watch.observer to auto or polling")
            checks.append(check)
        checks.append(check_folder("spool", config.spool.folder, writable=True))
        if config.journal.path is not None:
            checks.append(check_folder("journal", config.journal.path.parent, writable=True))
        checks.append(check_folder("quarantine", config.quarantine_folder, writable=True))
    else:
        checks.append(check_folder("output", config.output.folder, writable=True))
    return checks


def check_broker(mqtt, timeout_s: float = 3.0) -> Check:
    """A TCP connection to the broker. No MQTT session: one with the daemon's fixed client id would
    take over the running daemon's session, so credentials and TLS are not tried here."""
    started = time.perf_counter()
    try:
        with socket.create_connection((mqtt.host, mqtt.port), timeout=timeout_s):
            pass
    except OSError as error:
        return Check("broker", FAIL, f"{mqtt.host}:{mqtt.port} is not reachable: {error}")
    milliseconds = (time.perf_counter() - started) * 1000
    return Check("broker", OK, f"{mqtt.host}:{mqtt.port} accepts TCP connections ({milliseconds:.0f} ms; "
                               f"TLS and credentials are checked by the daemon)")
