"""The seam between the daemon and the codec: which function codes a photo, with which settings.

A coder is ``coder(path, settings, mask) -> result`` where ``result.bundle`` is a container
:class:`~edge.codec.container.Bundle` and ``result.report`` a dict: the codec's
``edge.codec.photo.compress_photo`` by default, :func:`edge.codec.sourcefile.compress_source_file`
for ``coding.mode: source-file``, or any function the caller injects (tests, experiments).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge.codec.container import Bundle, encode_bundle
from edge.codec.sourcefile import CODER as SOURCE_FILE, compress_source_file
from edge.config import CodingConfig
from edge.errors import ConfigError, EdgeError

Coder = Callable[[Path, Any, "np.ndarray | None"], Any]


@dataclass(frozen=True)
class CodedPhoto:
    bundle_id: str
    data: bytes                 # the encoded bundle
    report: dict
    sent_source: bool           # the bundle carries the original file


def resolve_coder(config: CodingConfig, coder: Coder | None = None, settings: Any = None,
                  coders: Any = None, runtime: Any = None) -> tuple[Coder, Any]:
    """The coder and settings to use: the injected ones, or those the config names.

    ``coders`` (an ``edge.codec.photo.Coders``) may be given to use other models than the
    registry's; by default they load on first use.
    """
    if coder is not None:
        return coder, settings
    if config.mode == SOURCE_FILE:
        return compress_source_file, None
    try:
        # Imported here: the codec pulls in torch (1.3 s more at `edge run`'s start on a 2-core CPU), which
        # source-file mode does not need.
        from edge.codec import photo
    except ImportError as error:
        raise ConfigError(f"mode {config.mode!r} needs the codec (edge.codec.photo), which cannot be "
                          f"imported ({error}); use mode source-file or install the full package",
                          key_path="coding.mode") from None
    if settings is None:
        try:
            settings = photo.CodingSettings(**config.codec_options())
        except (TypeError, ValueError, EdgeError) as error:
            raise ConfigError(f"the codec refuses these settings: {error}", key_path="coding") from None
    loaded = coders if coders is not None else photo.Coders(runtime=runtime)

    def compress(path: Path, settings: Any, mask: np.ndarray | None):
        return photo.compress_photo(path, settings, loaded, mask)

    return compress, settings


def code_photo(path: Path, mask: np.ndarray | None, coder: Coder, settings: Any, config: CodingConfig,
               fallback_for: str = "", send_source: bool = False) -> CodedPhoto:
    """Code one photo. With ``fallback_for`` (a refused bundle id) or ``send_source`` the source
    file is sent instead.

    A bundle larger than the photo is replaced by the source file when the config says so.
    Errors (InputError, CodingError, ...) propagate: the caller quarantines or falls back.
    """
    if fallback_for or send_source:
        result = compress_source_file(path, mask=mask, fallback_for=fallback_for)
    else:
        result = coder(path, settings, mask)
    bundle: Bundle = result.bundle
    data = encode_bundle(bundle)
    report = dict(result.report)
    sent_source = all(region.coded.coder == SOURCE_FILE for region in bundle.regions)
    if (not sent_source and config.if_larger_than_source == "send-source"
            and len(data) > bundle.source.size):
        report = {"replaced": f"bundle of {len(data)} bytes is larger than the {bundle.source.size}-byte "
                              f"source; sending the source file", "coded_report": report}
        bundle = compress_source_file(path, mask=mask).bundle
        data = encode_bundle(bundle)
        sent_source = True
    return CodedPhoto(bundle.bundle_id, data, report, sent_source)


def coders_used(report: dict) -> str:
    """The coder of each region, for the log: "background avif level 12, blade jpeg-exact"."""
    report = report.get("coded_report", report)     # a replaced bundle: what was tried
    parts = []
    for region, choice in report.get("choices", {}).items():
        level = choice.get("level")
        parts.append(f"{region} {choice.get('coder')}" + (f" level {level}" if level is not None else ""))
    return ", ".join(parts)
