"""PNG plots of a benchmark result, made from its JSON only (matplotlib, Agg backend).

* ``rd.png``: left, the mean whole-image RD curves (bpp, RGB PSNR) of our lossy coder and the
  classical sweeps; right, each ROI method as one point per photo: total bpp against blade PSNR
  (lossless blades drawn at the top edge).
* ``stages.png``: median seconds per stage, one stacked bar per mode (edge side, then the
  offshore decode).
* ``uplink.png``: upload minutes of a flight per method, with the flight time as a line.
"""
from __future__ import annotations

from pathlib import Path

from edge.bench.report import SHARED_STAGES, STAGE_LABELS, summarize
from edge.bench.uplink import Flight
from edge.bench.pipeline import EDGE_STAGES

LOSSLESS_PSNR = 60.0   # where exact blades are drawn on the ROI plot


def write_plots(result: dict, folder: Path, flight: Flight | None = None) -> list[Path]:
    import matplotlib   # imported here: an optional dependency (the classical extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarize(result, flight)
    written = []
    for name, draw in (("rd.png", _rd), ("stages.png", _stages), ("uplink.png", _uplink)):
        figure = draw(plt, result, summary)
        if figure is None:
            continue
        path = folder / name
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


def _rd(plt, result: dict, summary: dict):
    curves = summary["rd"].get("mean_curves", {})
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name, points in curves.items():
        points = sorted(points, key=lambda p: p["bpp"])
        left.plot([p["bpp"] for p in points], [p["psnr"] for p in points], "o-" if name == "ours" else ".--",
                  label="ours (lossy)" if name == "ours" else name, linewidth=2 if name == "ours" else 1)
    left.set_xscale("log")
    left.set_xlabel("bits per pixel")
    left.set_ylabel("PSNR (dB, RGB)")
    crop = summary["rd"].get("crop")
    left.set_title(f"whole image, mean of {summary['rd'].get('images', 0)} crops"
                   + (f" {crop[1]}x{crop[0]}" if crop else ""))
    if curves:
        left.legend(fontsize=8)
    left.grid(alpha=0.3)

    rows = result.get("images", [])
    methods: dict[str, list] = {}
    for row in rows:
        for mode, m in row.get("modes", {}).items():
            if "bpp" in m:
                blade = LOSSLESS_PSNR if m.get("blade_exact") else m["quality"]["blade"]["psnr"]
                methods.setdefault(f"ours: {mode}", []).append((m["bpp"]["total"], blade))
        for name in ("roi_lossy", "roi_lossless"):
            b = row.get("classical", {}).get(name)
            if b:
                blade = LOSSLESS_PSNR if name == "roi_lossless" else b["quality"]["blade"]["psnr"]
                methods.setdefault(f"classical ROI ({b['codec']}, {name[4:]})", []).append((b["bpp"], blade))
        source_bpp = 8 * row["source"]["bytes"] / row["source"]["pixels"]
        methods.setdefault("source file", []).append((source_bpp, None))
    for label, points in methods.items():
        points = [(x, y) for x, y in points if x and y is not None]
        if points:
            right.scatter([x for x, _ in points], [y for _, y in points], label=label,
                          marker="*" if label.startswith("ours") else "o", s=60 if label.startswith("ours") else 30)
    for x, _ in methods.get("source file", []):
        right.axvline(x, color="grey", alpha=0.3, linewidth=0.8)
    right.axhline(LOSSLESS_PSNR, color="black", alpha=0.2, linestyle=":")
    right.set_xscale("log")
    right.set_xlabel("total bits per pixel (grey lines: source files)")
    right.set_ylabel(f"blade PSNR (dB; exact drawn at {LOSSLESS_PSNR:g})")
    right.set_title("ROI bundles, one point per photo")
    if methods:
        right.legend(fontsize=8)
    right.grid(alpha=0.3)
    return figure


def _stages(plt, result: dict, summary: dict):
    modes = {mode: m for mode, m in summary["modes"].items() if "stages" in m}
    if not modes:
        return None
    stages = [s for s in SHARED_STAGES if s in summary["shared_stages"]]
    stages += [s for s in (*EDGE_STAGES, "offshore_decode") if any(s in m["stages"] for m in modes.values())]
    figure, axis = plt.subplots(figsize=(10, 1.2 + 0.6 * len(modes)))
    names = list(modes)
    left = [0.0] * len(names)
    colours = plt.get_cmap("tab20")
    for k, stage in enumerate(stages):
        widths = []
        for mode in names:
            entry = summary["shared_stages"].get(stage) if stage in SHARED_STAGES else modes[mode]["stages"].get(stage)
            widths.append(entry["median"] if entry else 0.0)
        axis.barh(names, widths, left=left, label=STAGE_LABELS.get(stage, stage), color=colours(k % 20))
        left = [a + b for a, b in zip(left, widths)]
    axis.set_xlabel("median seconds per photo (as coded; offshore decode last)")
    axis.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    axis.grid(axis="x", alpha=0.3)
    return figure


def _uplink(plt, result: dict, summary: dict):
    rows = summary["uplink"]["rows"]
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(9, 0.8 + 0.45 * len(rows)))
    axis.barh([r["method"] for r in rows], [r["upload_minutes"] for r in rows],
              color=["tab:green" if r["keeps_up"] else "tab:red" for r in rows])
    flight = summary["uplink"]["flight"]
    axis.axvline(flight["minutes"], color="black", linestyle="--", label=f"flight: {flight['minutes']:g} min")
    axis.set_xscale("log")
    axis.set_xlabel(f"minutes to upload {flight['photos']} photos at {flight['link_mbps']:g} Mbit/s")
    axis.legend(fontsize=8)
    axis.invert_yaxis()
    return figure
