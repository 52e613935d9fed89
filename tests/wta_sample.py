"""Real wta-train photos for the tests: the sample every clone has (tests/data/wta-sample, half
size, see its README) and, where it lies beside the repository, the full set."""
from __future__ import annotations

from pathlib import Path

SAMPLE = Path(__file__).resolve().parent / "data" / "wta-sample"
FULL_SET = Path(__file__).resolve().parents[2] / "shared" / "data" / "wta-train"
SET_SIZE = (1080, 1920)      # height, width of the full set's frames; the sample's are half that


def mask_paths() -> list[Path]:
    """The sample's masks, then the full set's when it is here (absent on a clean clone)."""
    return sorted((SAMPLE / "masks").glob("*.png")) + sorted((FULL_SET / "masks").glob("*.png"))
