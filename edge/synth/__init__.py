"""Synthetic drone inspections of wind-turbine blades, with ground-truth masks.

- :func:`generate_inspection` writes photos (JPEG + EXIF), masks (PNG) and a manifest;
  the folder layout is described in :mod:`edge.synth.inspection`.
- :func:`render_frame` renders one random frame in memory, for tests and examples.
- :func:`frame_spec` / :func:`render` reproduce any frame of an inspection.

Modules: ``noise`` (fractal noise), ``camera`` (rays), ``lighting``, ``ground`` (terrain
and sea textures), ``backgrounds`` (sky, sea, land), ``blade`` (outline, shading, defects),
``frame`` (composition of one photo), ``plan`` (random choices), ``metadata`` (EXIF),
``manifest``, ``inspection`` (writing it all).
"""
from __future__ import annotations

import numpy as np

from edge.synth.frame import FrameSpec, render
from edge.synth.inspection import frame_spec, generate_inspection, parse_size
from edge.synth.manifest import FrameRecord, Manifest
from edge.synth.plan import FRAME_KINDS, plan_frame


def render_frame(size: tuple[int, int], seed: int, surface: str = "PS",
                 kind: str = "closeup") -> tuple[np.ndarray, np.ndarray]:
    """One random frame: (RGB uint8 H x W x 3, blade mask bool H x W). ``size`` is (width, height).

    ``kind`` is ``closeup`` (blade 10-60 % of the frame), ``far`` or ``empty`` (no blade).
    """
    return render(plan_frame(size, seed, surface, kind))


__all__ = ["FRAME_KINDS", "FrameRecord", "FrameSpec", "Manifest", "frame_spec", "generate_inspection",
           "parse_size", "plan_frame", "render", "render_frame"]
