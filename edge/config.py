"""Configuration of the edge daemon (``edge run``) and the offshore subscriber (``edge subscribe``).

One YAML file per side, validated by one pydantic schema with one model per section. Every
model forbids unknown keys (a typo fails at start-up instead of being ignored), every field
has a description, and a validation error names the YAML file, the line and the key path::

    deploy/edge.yaml:23: mqtt.port: Input should be less than or equal to 65535 (got 70000)

Secrets (the MQTT password) are never written in the YAML: the file says where to read them
(an environment variable or a file), :meth:`SecretRef.resolve` reads them when connecting,
and their values never appear in a repr or a log. Relative paths are taken relative to the
folder of the YAML file. Validation only validates: it never probes the broker, the GPU or
the mounts (``edge doctor`` does that).
"""
from __future__ import annotations

import json
import os
import re
import weakref
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (AfterValidator, BaseModel, ByteSize, ConfigDict, Field, ValidationError,
                      ValidationInfo, model_validator)

from edge.errors import ConfigError

# A name that is safe inside an MQTT topic level and a file name.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _resolve_relative(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = path.expanduser()
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    return path


def _must_exist(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"file {path} does not exist")
    return path


# A path in the YAML: relative paths are relative to the config file's folder.
ConfigPath = Annotated[Path, AfterValidator(_resolve_relative)]
ExistingFile = Annotated[Path, AfterValidator(_resolve_relative), AfterValidator(_must_exist)]


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------- shared sections

class SecretRef(Section):
    """Where a secret is read from: exactly one of ``env`` or ``file``."""

    env: str | None = Field(None, description="name of the environment variable holding the secret")
    file: ExistingFile | None = Field(None, description="file whose content (trailing newline removed) is the secret")

    @model_validator(mode="after")
    def _exactly_one(self) -> "SecretRef":
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file' (secrets are never written in the YAML)")
        return self

    def resolve(self, key_path: str = "") -> str:
        """Read the secret now; a missing variable or unreadable file is a :class:`ConfigError`."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"environment variable {self.env} is not set", key_path=f"{key_path}.env")
            return value
        try:
            return self.file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise ConfigError(f"cannot read {self.file}: {error.strerror}", key_path=f"{key_path}.file") from None

    def __repr__(self) -> str:            # says where the secret is, never what it is
        return f"SecretRef(env={self.env!r})" if self.env else f"SecretRef(file={str(self.file)!r})"


class TlsConfig(Section):
    """TLS towards the broker."""

    enabled: bool = Field(False, description="connect with TLS")
    ca_file: ExistingFile | None = Field(None, description="CA certificates (PEM); default: the system's")
    cert_file: ExistingFile | None = Field(None, description="client certificate (PEM) for mutual TLS")
    key_file: ExistingFile | None = Field(None, description="client private key (PEM) for mutual TLS")
    insecure: bool = Field(False, description="skip the server host name check (testing only)")

    @model_validator(mode="after")
    def _pair(self) -> "TlsConfig":
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class AuthConfig(Section):
    """Broker user name and password."""

    username: str = Field("", description="MQTT user name; empty for none")
    password: SecretRef | None = Field(None, description="where to read the password: {env: NAME} or {file: PATH}")


class MqttConfig(Section):
    """Connection to the MQTT broker (MQTT v5)."""

    host: str = Field("localhost", min_length=1, description="broker host name or address")
    port: int = Field(1883, ge=1, le=65535, description="broker port (8883 is usual with TLS)")
    client_id: str = Field(..., pattern=NAME_PATTERN,
                           description="MQTT client id; fixed, because the session is persistent")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive interval in seconds")
    topic_root: str = Field("edge", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
                            description="first topic levels of every topic (edge/offshore must agree)")
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0, le=0xFFFFFFFF,
                                  description="how long the broker keeps the session (queued messages) "
                                              "while this client is away")
    reconnect_min_s: float = Field(1.0, gt=0, description="first reconnect delay; doubles up to the maximum")
    reconnect_max_s: float = Field(60.0, gt=0, description="longest reconnect delay")
    tls: TlsConfig = Field(default_factory=TlsConfig, description="TLS settings")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="user name and password")

    @model_validator(mode="after")
    def _delays(self) -> "MqttConfig":
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self


# ---------------------------------------------------------------------------- edge sections

class WatchConfig(Section):
    """The folders the camera writes to (the SD card)."""

    folders: list[ConfigPath] = Field(..., min_length=1, description="folders to watch; may be absent "
                                      "until the card is inserted")
    patterns: list[str] = Field(["*.jpg", "*.jpeg", "*.png", "*.tif", "*.tiff"], min_length=1,
                                description="file name patterns of photos (case-insensitive)")
    exclude: list[str] = Field(["*.mask.png", ".*"], description="file name patterns never taken "
                               "(mask files, hidden and temporary files)")
    recursive: bool = Field(True, description="watch sub-folders too")
    observer: Literal["auto", "inotify", "polling"] = Field(
        "auto", description="inotify (local file systems), polling (FUSE, exFAT, network mounts) "
                            "or auto (polling where inotify gives no events)")
    poll_interval_s: float = Field(1.0, gt=0, description="polling period, also the stability check period")
    stable_s: float = Field(2.0, ge=0, description="a file is complete when closed after writing, or "
                            "when its size and mtime did not change for this long")


class JournalConfig(Section):
    """The SQLite journal of every photo's state."""

    path: ConfigPath | None = Field(None, description="journal file; default SPOOL/journal.sqlite")


class GroupingConfig(Section):
    """Grouping photos by blade surface (the forest trains per surface)."""

    mode: Literal["capture-time", "folder"] = Field(
        "capture-time", description="capture-time: a new surface after a gap in EXIF capture times; "
                                    "folder: one surface per folder (or per folder_regex match)")
    max_gap_s: float = Field(30.0, gt=0, description="capture-time gap that starts a new surface")
    folder_regex: str | None = Field(None, description="folder mode: regex searched in the path relative "
                                     "to the watched folder; group 1 (or the match) names the surface")
    max_photos: int = Field(40, ge=1, description="a surface group closes after this many photos")
    idle_s: float = Field(60.0, gt=0, description="a group closes when no photo joined it for this long")

    @model_validator(mode="after")
    def _regex(self) -> "GroupingConfig":
        if self.folder_regex is not None:
            try:
                re.compile(self.folder_regex)
            except re.error as error:
                raise ValueError(f"folder_regex is not a regular expression: {error}") from None
        return self


class SegmentationConfig(Section):
    """Where blade masks come from."""

    mode: Literal["model", "mask-files", "none"] = Field(
        "model", description="model: BU-Netv2+P per surface; mask-files: read STEM+mask_suffix next to "
                             "the photo (or in mask_folder); none: no mask")
    mask_folder: ConfigPath | None = Field(None, description="mask-files: folder of the masks; default the photo's")
    mask_suffix: str = Field(".mask.png", min_length=1, description="mask-files: suffix replacing the photo's")
    weights: ConfigPath | None = Field(None, description="model: BU-Netv2 weights file; default the shipped one")
    min_blade_fraction: float = Field(
        0.005, ge=0, le=1, description="model: a mask covering less of the photo than this is taken for a "
                                       "missed blade (inspection photos show one); see if_no_blade")
    if_no_blade: Literal["send-source", "background"] = Field(
        "send-source", description="model: what to do with such a photo: send the original file (a missed "
                                   "blade keeps every pixel) or code it as background like the mask says")
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="model: confidence guard: a photo whose mean U-Net probability inside "
                                      "its mask is below this is sent as its original file; unset: the "
                                      "threshold stored with the weights; 0: off")


class CodingConfig(Section):
    """How each photo is coded (edge.codec.photo.CodingSettings; unset values take the codec's defaults)."""

    mode: str = Field("roi", pattern=r"^[a-z0-9-]+$",
                      description="roi (blade and background apart), lossy, lossless, implicit-roi "
                                  "(lossy ROI by the mask-conditioned coder), or source-file to send the "
                                  "original files")
    quality: int | None = Field(None, ge=0, description="lossy and implicit-roi modes: quality level of the "
                                                        "whole photo")
    background: str = Field("auto", pattern=r"^[a-z0-9-]+$",
                            description="roi mode: background coder: auto (the one meeting bg_psnr with the fewest "
                                        "bytes, learned coders included when they fit time_budget_s), avif, jxl "
                                        "or hp-easn")
    bg_psnr: float | None = Field(25.0, gt=0, description="roi mode: background PSNR target in dB")
    bg_quality: int | None = Field(None, ge=0, description="roi mode: instead of bg_psnr, a quality level of the "
                                                           "named background coder")
    blade: str | None = Field("auto", pattern=r"^[a-z0-9-]+$",
                              description="roi mode: blade coder: auto (jpeg-exact for JPEG photos, lossless "
                                          "otherwise), jpeg-exact, lossless (the smaller of jxl-lossless and "
                                          "bitswap), jxl-lossless, bitswap, or lossy (with blade_psnr)")
    blade_psnr: float | None = Field(None, gt=0, description="roi mode, lossy blade: PSNR target in dB")
    blade_quality: int | None = Field(None, ge=0, description="roi mode, lossy blade: instead of blade_psnr, a "
                                                              "quality level")
    time_budget_s: float = Field(10.0, gt=0, description="auto: seconds a learned coder may take on a region "
                                                         "to be tried (measured once per run)")
    if_larger_than_source: Literal["send-source", "keep"] = Field(
        "send-source", description="when a bundle is larger than the photo: send the original file "
                                   "instead, or keep the bundle")
    workers: int = Field(1, ge=1, le=16, description="coding threads (the codec has its own pools)")

    def codec_options(self) -> dict:
        """The settings handed to the codec: the ones given in the file."""
        names = ("mode", "quality", "background", "bg_psnr", "bg_quality", "blade", "blade_psnr", "blade_quality",
                 "time_budget_s")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


class SpoolConfig(Section):
    """The durable outbox of coded bundles."""

    folder: ConfigPath = Field(..., description="spool folder (bundles, work files, journal by default)")
    max_bytes: ByteSize = Field(ByteSize(20 << 30), gt=0, description="quota (e.g. 20GiB); when full, "
                                "coding waits for acknowledgements and photos stay on the card")
    source_policy: Literal["card", "spool"] = Field(
        "card", description="where the source photo is kept until acknowledged: on the card, or "
                            "copied into the spool (the card may then be removed)")
    delete_from_card_after_ack: bool = Field(False, description="delete the photo from the card once "
                                             "the offshore side acknowledged it")
    disk_full_restart_s: float = Field(600.0, ge=0, description="when the disk under the spool or journal has "
                                       "been full this long (the daemon waits meanwhile), stop pinging the "
                                       "systemd watchdog so that systemd restarts the service; 0: never")


class QuarantineConfig(Section):
    """Where unusable input files go."""

    folder: ConfigPath | None = Field(None, description="quarantine folder; default SPOOL/quarantine")


class PublishConfig(Section):
    """How bundles travel over MQTT."""

    chunk_bytes: ByteSize = Field(ByteSize(128 << 10), ge=1024, le=64 << 20,
                                  description="chunk size of the MQTT messages (e.g. 128KiB)")
    max_inflight: int = Field(16, ge=1, le=1000, description="chunks sent but not yet acknowledged by the broker")
    rate_limit_bytes_per_s: ByteSize = Field(ByteSize(0), ge=0, description="uplink limit; 0 for none")
    status_interval_s: float = Field(30.0, gt=0, description="period of the status topic")
    ack_timeout_s: float = Field(600.0, gt=0, description="re-send a bundle the offshore side did not "
                                 "acknowledge within this time (doubling per attempt)")
    max_attempts: int = Field(10, ge=1, description="sends of one bundle before it is marked failed "
                              "(it stays in the spool)")


class RuntimeConfig(Section):
    """Where the networks run (edge.runtime): TensorRT engines, ONNX Runtime or PyTorch.

    Only the analysis/synthesis transforms and the U-Net are accelerated; the networks that
    shape probability tables always run in float64 on the CPU (docs/design.md, rule 3).
    """

    backend: Literal["auto", "tensorrt", "onnxruntime", "torch"] = Field(
        "auto", description="auto: TensorRT engines when valid, else ONNX Runtime when ONNX files exist, "
                            "else PyTorch; naming one forces it (an error at start-up if unusable)")
    precision: Literal["fp16", "fp32"] = Field("fp16", description="precision of the TensorRT engines to use")
    engines_folder: ConfigPath | None = Field(None, description="folder of `edge engines build`; default "
                                              "engines/ of the installed checkout")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="PyTorch backend device")
    threads: int | None = Field(None, ge=1, le=64, description="ONNX Runtime threads per network; "
                                "default PyTorch's thread count")
    bitswap_workers: int = Field(2, ge=0, le=64, description="processes that code shards of Bit-swap's streams "
                                 "(a lossless blade) on their own cores; 0: in the coding thread")


class EdgeConfig(Section):
    """``edge run``: the daemon on the drone's companion computer."""

    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig, description="network backends (edge doctor "
                                   "reports the choice)")

    device: str = Field(..., pattern=NAME_PATTERN, description="this device's name, used in topics")
    watch: WatchConfig = Field(..., description="watched folders")
    journal: JournalConfig = Field(default_factory=JournalConfig, description="photo journal")
    grouping: GroupingConfig = Field(default_factory=GroupingConfig, description="surface grouping")
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig, description="blade masks")
    coding: CodingConfig = Field(default_factory=CodingConfig, description="codec settings")
    spool: SpoolConfig = Field(..., description="bundle spool")
    quarantine: QuarantineConfig = Field(default_factory=QuarantineConfig, description="quarantine")
    mqtt: MqttConfig = Field(..., description="broker connection")
    publish: PublishConfig = Field(default_factory=PublishConfig, description="MQTT publishing")

    @property
    def journal_path(self) -> Path:
        return self.journal.path or self.spool.folder / "journal.sqlite"

    @property
    def quarantine_folder(self) -> Path:
        return self.quarantine.folder or self.spool.folder / "quarantine"


# ---------------------------------------------------------------------------- offshore sections

class SubscribeConfig(Section):
    """What the offshore subscriber listens to."""

    group: str = Field("decoders", pattern=r"^$|" + NAME_PATTERN[1:],
                       description="shared subscription group ($share/GROUP/...), so several decoders "
                                   "split the load; empty for a plain subscription")
    devices: str = Field("+", pattern=r"^\+$|" + NAME_PATTERN[1:], description="one device name, or + for all")
    workers: int = Field(1, ge=1, le=64, description="decoding threads")


class OutputConfig(Section):
    """Where decoded photos are written."""

    folder: ConfigPath = Field(..., description="output folder (one sub-folder per device)")
    image_format: Literal["png", "tiff"] = Field("png", description="decoded image format")
    write_mask: bool = Field(True, description="write the blade mask as STEM.mask.png")
    keep_source_files: bool = Field(True, description="when a bundle carries the original file, "
                                    "write it too (bit-exact camera file)")
    write_jpeg: bool = Field(True, description="for a jpeg-exact blade, also write STEM.jpg: a standard JPEG "
                             "whose blade blocks are the camera's own (the rest re-quantized from the decoded photo)")
    incoming_max_age_s: float = Field(2 * 24 * 3600.0, gt=0, description="drop incomplete bundles "
                                      "whose last chunk is older than this")


class OffshoreConfig(Section):
    """``edge subscribe``: the decoder on the offshore (or onshore) server."""

    mqtt: MqttConfig = Field(..., description="broker connection")
    subscribe: SubscribeConfig = Field(default_factory=SubscribeConfig, description="subscription")
    output: OutputConfig = Field(..., description="decoded output")


# ---------------------------------------------------------------------------- loading

# The YAML file each loaded config came from (not a field: equal configs from two files stay equal).
_SOURCES: dict[int, Path] = {}        # id(config) -> file, dropped with the config


def load_edge_config(path: str | os.PathLike) -> EdgeConfig:
    """Read and validate an edge YAML file; every problem is one :class:`ConfigError`."""
    return _load(Path(path), EdgeConfig)


def load_offshore_config(path: str | os.PathLike) -> OffshoreConfig:
    """Read and validate an offshore YAML file."""
    return _load(Path(path), OffshoreConfig)


def dump_yaml(config: EdgeConfig | OffshoreConfig) -> str:
    """The config as YAML that loads back to an equal config (secrets stay references)."""
    return yaml.safe_dump(json.loads(config.model_dump_json(exclude_none=True)), sort_keys=False)


def check_secrets(config: EdgeConfig | OffshoreConfig) -> None:
    """Resolve every secret once (without keeping or showing it): for ``--validate-config`` and
    before a service starts. The error names the YAML file and line when the config came from one."""
    if config.mqtt.auth.password is None:
        return
    try:
        config.mqtt.auth.password.resolve("mqtt.auth.password")
    except ConfigError as error:
        source = _SOURCES.get(id(config))
        if source is None or error.source:
            raise
        line = None
        try:
            line = _nearest_line(_key_lines(yaml.compose(source.read_text(encoding="utf-8"),
                                                          Loader=yaml.SafeLoader)), tuple(error.key_path.split(".")))
        except (OSError, yaml.YAMLError):
            pass
        message = str(error).removeprefix(f"{error.key_path}: ")
        raise ConfigError(message, key_path=error.key_path, source=f"{source}:{line}" if line else str(source)) from None


def _load(path: Path, schema: type[Section]):
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the config file: {error.strerror}", source=str(path)) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"not valid YAML: {getattr(error, 'problem', None) or error}", source=where) from None
    if not isinstance(data, dict):
        raise ConfigError("the file must hold a YAML mapping of sections", source=str(path))
    try:
        config = schema.model_validate(data, context={"base_dir": path.parent.resolve()})
        _SOURCES[id(config)] = path
        weakref.finalize(config, _SOURCES.pop, id(config), None)
        return config
    except ValidationError as error:
        lines = _key_lines(node)
        messages = []
        for problem in error.errors():
            loc = tuple(problem["loc"])
            key_path = ".".join(str(part) for part in loc) or "(top level)"
            line = _nearest_line(lines, loc)
            where = f"{path}:{line}" if line else str(path)
            message = problem["msg"].removeprefix("Value error, ")
            if problem["type"] == "extra_forbidden":
                message = "unknown key (check the spelling; see deploy/ for the valid keys)"
            elif problem["type"] == "missing":
                message = "required key is missing"
            elif "input" in problem and not isinstance(problem["input"], (dict, list)) and not _secret(loc):
                message += f" (got {problem['input']!r})"
            messages.append(f"{where}: {key_path}: {message}")
        failure = ConfigError("\n".join(messages))    # each line already names file, line and key
        failure.key_path = ".".join(str(part) for part in error.errors()[0]["loc"])
        failure.source = str(path)
        raise failure from None


def _secret(loc: tuple) -> bool:
    """Is this key path a secret, whose value must not be echoed in an error?"""
    return any(word in str(part).lower() for part in loc for word in ("password", "secret", "token"))


def _key_lines(node) -> dict[tuple, int]:
    """Map each key path (tuple of keys and list indexes) of a composed YAML tree to its line."""
    lines: dict[tuple, int] = {}

    def walk(current, prefix: tuple) -> None:
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                key = (*prefix, key_node.value)
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                lines[(*prefix, index)] = item.start_mark.line + 1
                walk(item, (*prefix, index))

    if node is not None:
        walk(node, ())
    return lines


def _nearest_line(lines: dict[tuple, int], loc: tuple) -> int | None:
    """The line of the key path, or of its closest parent present in the file."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
