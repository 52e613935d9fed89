"""Summary and terminal tables of a benchmark result, made from its JSON only.

:func:`summarize` turns the per-photo rows into min / median / max per stage and mode, rates,
quality, the classical comparisons, BD-rates and the uplink view; :func:`render` prints them.
Both read nothing but the result dict, so ``edge-bench --from-json OUT.json`` re-renders a run
(with other link or flight settings if asked).

Derived numbers:

* edge seconds per photo = input decode + segmentation + mask code + background + blade (or
  whole) + bundle write; photos per minute = 60 / that. With ``--crop`` the coding stages saw
  fewer pixels than a full photo: ``photos_per_minute_full_size`` scales them linearly to the
  source's pixel count (input decode and segmentation always ran on the whole photo);
* full-size bytes per photo = total bpp x the source's pixels / 8 (exact without ``--crop``);
* source ratio = the source file's bits per pixel / the bundle's;
* parallel speed-up = Bit-swap's sequential encode of the blade / the ROI's parallel blade coding;
  parallel/chain bits = the ROI's blade bits / the sequential chain's (each parallel stream
  pays its first patch's initial bits beyond what its background seed holds).
"""
from __future__ import annotations

import math
import statistics

from edge.bench.pipeline import EDGE_STAGES, SEGMENT_STEPS
from edge.bench.uplink import Flight, uplink_table

SHARED_STAGES = ("decode_input", *SEGMENT_STEPS.values())
STAGE_LABELS = {
    "decode_input": "input decode", "seg_unet": "BU-Netv2 (4 flips)", "seg_fill": "hole filling",
    "seg_forest": "forest train + predict", "seg_fill_final": "hole filling (final)",
    "seg_upscale": "mask upscale", "mask_code": "mask coding", "background": "background coding",
    "blade": "blade coding (parallel)", "whole": "whole-photo coding", "bundle_write": "bundle write (fsync)",
    "offshore_decode": "offshore decode", "blade_sequential_encode": "blade, Bit-swap sequential encode",
    "blade_sequential_decode": "blade, Bit-swap sequential decode",
}
LOSSLESS_CODECS = ("png", "webp", "jpegxl", "jpeg2000", "jpegls")


def stats(values) -> dict | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


def _get(data, *keys):
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _flight(result: dict, flight: Flight | None) -> Flight:
    if flight is not None:
        return flight
    saved = _get(result, "settings", "flight") or {}
    return Flight(**saved) if saved else Flight()


def _modes(rows: list[dict]) -> list[str]:
    names: list[str] = []
    for row in rows:
        names += [m for m in row.get("modes", {}) if m not in names]
    return names


def edge_seconds(row: dict, mode: str, full_size: bool = False) -> float | None:
    measured = row["modes"].get(mode, {})
    if "stages" not in measured:
        return None
    scale = row["source"]["pixels"] / row["pixels"] if full_size else 1.0
    shared = sum(row["stages"].get(s, 0.0) for s in SHARED_STAGES)
    return shared + scale * sum(measured["stages"].get(s, 0.0) for s in EDGE_STAGES)


def summarize(result: dict, flight: Flight | None = None) -> dict:
    rows = result.get("images", [])
    flight = _flight(result, flight)
    summary = {"images": len(rows),
               "megapixels_coded": sum(r["pixels"] for r in rows) / 1e6,
               "shared_stages": {s: stats(r["stages"].get(s) for r in rows) for s in SHARED_STAGES
                                 if any(s in r["stages"] for r in rows)},
               "modes": {mode: _summarize_mode(rows, mode) for mode in _modes(rows)},
               "classical": _summarize_classical(rows),
               "rd": _summarize_rd(rows),
               "segmentation_f1": stats(_get(r, "segmentation_agreement", "f1") for r in rows),
               "learned": _summarize_learned(rows)}
    summary["uplink"] = uplink_table(_full_size_bytes(rows, summary), flight)
    summary["uplink"]["photos_per_minute_needed"] = flight.photos_per_minute
    return summary


def _summarize_mode(rows: list[dict], mode: str) -> dict:
    measured = [(r, r["modes"][mode]) for r in rows if mode in r.get("modes", {})]
    ok = [(r, m) for r, m in measured if "error" not in m]
    out = {"images": len(ok), "errors": [f"{r['image']}: {m['error']}" for r, m in measured if "error" in m]}
    if not ok:
        return out
    stages = sorted({s for _, m in ok for s in m["stages"]}, key=lambda s: list(STAGE_LABELS).index(s)
                    if s in STAGE_LABELS else 99)
    out["stages"] = {s: stats(m["stages"].get(s) for _, m in ok) for s in stages}
    sequential = [m["sequential"] for _, m in ok if "sequential" in m]
    if sequential:
        out["stages"]["blade_sequential_encode"] = stats(s["encode_s"] for s in sequential)
        out["stages"]["blade_sequential_decode"] = stats(s["decode_s"] for s in sequential)
        out["sequential"] = {"images": len(sequential),
                             "encode_speedup": stats(s.get("encode_speedup") for s in sequential),
                             "parallel_to_sequential_bits": stats(s.get("parallel_to_sequential_bits")
                                                                  for s in sequential),
                             "all_exact": all(s["exact"] for s in sequential)}
    out["edge_seconds"] = stats(edge_seconds(r, mode) for r, _ in ok)
    out["photos_per_minute"] = stats(60 / edge_seconds(r, mode) for r, _ in ok)
    out["photos_per_minute_full_size"] = stats(60 / edge_seconds(r, mode, True) for r, _ in ok)
    out["offshore_photos_per_minute_full_size"] = stats(
        60 / (m["stages"]["offshore_decode"] * r["source"]["pixels"] / r["pixels"]) for r, m in ok)
    out["peak_memory_mib"] = {"encode": stats(_get(m, "memory", "encode", "total_mib") for _, m in ok),
                              "decode": stats(_get(m, "memory", "decode", "total_mib") for _, m in ok)}
    out["bpp"] = {k: stats(m["bpp"].get(k) for _, m in ok) for k in ("total", "blade", "background", "whole")
                  if any(k in m["bpp"] for _, m in ok)}
    out["bpp_over_all_pixels"] = 8 * sum(m["bytes"]["bundle"] for _, m in ok) / sum(r["pixels"] for r, _ in ok)
    out["mask_bytes"] = stats(m["bytes"]["mask"] for _, m in ok)
    out["source_ratio"] = stats(m.get("source_ratio") for _, m in ok)
    out["quality"] = {region: {metric: stats(_get(m, "quality", region, metric) for _, m in ok)
                               for metric in ("psnr", "ms_ssim")} for region in ("blade", "background", "whole")}
    exact = [m["blade_exact"] for _, m in ok if "blade_exact" in m]
    if exact:
        out["blade_exact"] = all(exact)
    return out


def _summarize_learned(rows: list[dict]) -> dict:
    """auto's calibration of the learned coders (--learned-estimates): each one's estimated bytes
    over the classical coder's on the same tiles, per region."""
    out: dict = {}
    for region in ("background", "blade"):
        per_coder: dict[str, list] = {}
        for row in rows:
            candidates = _get(row, "modes", "auto", "learned_estimates", region, "candidates") or []
            sizes = {c["coder"]: c.get("estimated_bytes") for c in candidates}
            classical = [size for name, size in sizes.items() if name in ("avif", "jxl-lossless") and size]
            for name, size in sizes.items():
                if name not in ("avif", "jxl-lossless") and size and classical:
                    per_coder.setdefault(name, []).append(size / classical[0])
        for name, ratios in per_coder.items():
            out[f"{region}: {name}"] = {"images": len(ratios), "to_classical": stats(ratios)}
    return out


def _summarize_classical(rows: list[dict]) -> dict:
    out: dict = {}
    blade_rows = [r for r in rows if _get(r, "classical", "lossless_blade")]
    if blade_rows:
        pixels = sum(r["classical"]["lossless_blade"]["blade_pixels"] for r in blade_rows)
        per_codec = {}
        for codec in LOSSLESS_CODECS:
            sizes = [_get(r, "classical", "lossless_blade", "codecs", codec, "bytes") for r in blade_rows]
            if all(size is not None for size in sizes):
                per_codec[codec] = 8 * sum(sizes) / pixels
        ours = [(_get(r, "modes", "lossless-roi", "bits", "blade"), _get(r, "modes", "lossless-roi",
                                                                         "blade_cell_pixels")) for r in blade_rows]
        if ours and all(bits is not None and count for bits, count in ours):
            per_codec["bitswap (ours)"] = sum(b for b, _ in ours) / sum(c for _, c in ours)
            chained = [r for r in blade_rows if _get(r, "modes", "lossless-roi", "sequential")]
            if chained:   # only the photos the sequential mode also coded (--sequential): compare on those
                label = f"{len(chained)} of {len(blade_rows)} photos"
                chain_pixels = sum(r["modes"]["lossless-roi"]["blade_cell_pixels"] for r in chained)
                per_codec[f"bitswap, parallel, {label}"] = sum(
                    r["modes"]["lossless-roi"]["bits"]["blade"] for r in chained) / chain_pixels
                per_codec[f"bitswap, one chain, {label}"] = sum(
                    r["modes"]["lossless-roi"]["sequential"]["bits"] for r in chained) / chain_pixels
            per_codec["ours_to"] = {codec: per_codec["bitswap (ours)"] / value for codec, value in per_codec.items()
                                    if codec in LOSSLESS_CODECS}
        out["lossless_blade_bits_per_pixel"] = per_codec
    reference = [(r, _get(r, "modes", "lossless-auto", "bits", "blade"),
                  _get(r, "classical", "lossless_blade_cells16", "codecs", "jpegxl", "bytes")) for r in rows]
    reference = [(r, ours, 8 * jxl) for r, ours, jxl in reference if ours is not None and jxl]
    if reference:   # lossless-auto's blade against JPEG XL lossless (effort 7) on the same 16-pixel cells
        out["lossless_auto_to_jpegxl"] = {"images": len(reference),
                                          "ratio": stats(ours / jxl for _, ours, jxl in reference),
                                          "never_larger": all(ours <= jxl for _, ours, jxl in reference)}
    for name in ("roi_lossy", "roi_lossless", "roi_anchor"):
        baseline = [(r, r["classical"][name]) for r in rows if _get(r, "classical", name)]
        if not baseline:
            continue
        ours = baseline[0][1]["matches"]
        ratios = [_get(r, "modes", ours, "bytes", "bundle") / b["bytes"] for r, b in baseline
                  if _get(r, "modes", ours, "bytes", "bundle")]
        out[name] = {"codec": baseline[0][1]["codec"], "matches": ours, "images": len(baseline),
                     "bpp": stats(b["bpp"] for _, b in baseline),
                     "source_ratio": stats(8 * r["source"]["bytes"] / r["source"]["pixels"] / b["bpp"]
                                           for r, b in baseline),
                     "ours_to_classical_bytes": stats(ratios),
                     "reached": all(b.get("base_reached", True) and b.get("layer_reached", True)
                                    for _, b in baseline),
                     "quality": {region: {metric: stats(_get(b, "quality", region, metric) for _, b in baseline)
                                          for metric in ("psnr", "ms_ssim")} for region in ("blade", "background")}}
    return out


def _summarize_rd(rows: list[dict]) -> dict:
    rd_rows = [r["rd"] for r in rows if "rd" in r]
    if not rd_rows:
        return {}
    names = ["ours", *[n for n in rd_rows[0] if isinstance(rd_rows[0][n], list) and n != "ours"]]
    bd = {}
    for name in names[1:]:
        values = [_get(rd, "bd_rate", name) for rd in rd_rows]
        values = [v for v in values if v is not None]
        apart = [rd["no_overlap"][name] for rd in rd_rows if name in rd.get("no_overlap", {})]
        bd[name] = {"mean": statistics.mean(values) if values else None,
                    "median": statistics.median(values) if values else None, "images": len(values),
                    "no_overlap": len(apart)}
        if apart:   # medians of where the curves lie when they share no PSNR range
            bd[name]["apart"] = {side: {key: statistics.median(a[side][key] for a in apart) for key in ("bpp", "psnr")}
                                 for side in ("ours_best", "its_lowest")}
    curves = {}
    for name in names:
        series = [rd[name] for rd in rd_rows if isinstance(rd.get(name), list)]
        if series and len({len(s) for s in series}) == 1:
            curves[name] = [{"bpp": statistics.mean(s[i]["bpp"] for s in series),
                             "psnr": statistics.mean(s[i]["psnr"] for s in series),
                             "parameter": series[0][i]["parameter"]} for i in range(len(series[0]))
                            if all(s[i]["psnr"] is not None for s in series)]
    return {"bd_rate_of_ours": bd, "mean_curves": curves, "images": len(rd_rows),
            "crop": [rd_rows[0]["height"], rd_rows[0]["width"]]}


def _full_size_bytes(rows: list[dict], summary: dict) -> dict[str, float]:
    """Mean bytes of one full-size photo per method (bpp x the source's pixels / 8)."""
    if not rows:
        return {}
    out = {"source file": statistics.mean(r["source"]["bytes"] for r in rows)}
    for mode in summary["modes"]:
        sizes = [_get(r, "modes", mode, "full_size_bytes") for r in rows]
        sizes = [s for s in sizes if s is not None]
        if sizes:
            out[f"ours: {mode}"] = statistics.mean(sizes)
    for name, label in (("roi_lossy", "classical ROI, lossy blade"), ("roi_lossless", "classical ROI, lossless blade"),
                        ("roi_anchor", "classical ROI anchor, 40 dB blade")):
        sizes = [b["bpp"] * r["source"]["pixels"] / 8 for r in rows if (b := _get(r, "classical", name))]
        if sizes:
            codec = summary["classical"][name]["codec"]
            out[f"{label} ({codec})"] = statistics.mean(sizes)
    return out


# ---------------------------------------------------------------------------- text tables

def table(headers: list[str], rows: list[list], title: str = "") -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    out = ([title] if title else []) + [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
            for r in cells]
    return "\n".join(out)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.0f}" if abs(value) >= 1000 else f"{value:.2f}"
    return str(value)


def _med(entry) -> float | None:
    return entry["median"] if entry else None


def _mmm(entry) -> list:
    return [entry["min"], entry["median"], entry["max"]] if entry else [None, None, None]


def render(result: dict, flight: Flight | None = None) -> str:
    summary = summarize(result, flight)
    rows = result.get("images", [])
    machine = result.get("machine", {})
    settings = result.get("settings", {})
    parts = [f"edge-bench: {summary['images']} photos, {summary['megapixels_coded']:.1f} MP coded; "
             f"{machine.get('processor', '?')} ({machine.get('cores', '?')} cores), "
             f"torch {machine.get('torch', '?')} x{machine.get('torch_threads', '?')} threads; "
             f"started {result.get('started', '?')}" + ("" if result.get("complete") else " (incomplete)"),
             f"settings: crop {settings.get('crop')}, bg quality {settings.get('bg_quality')}, "
             f"blade quality {settings.get('blade_quality') if settings.get('blade_quality') is not None else 'auto'}"
             f" (>= {settings.get('blade_psnr')} dB), masks: {settings.get('masks')}"]
    loads = [value for row in rows for value in row.get("load_average", {}).values()]
    if loads:
        parts.append(f"machine load (1-min average) at the start and end of each photo: min {min(loads):.1f}, "
                     f"median {statistics.median(loads):.1f}, max {max(loads):.1f} on {machine.get('cores', '?')} "
                     f"cores (times stretch when it exceeds the benchmark's own threads)")

    modes = list(summary["modes"])
    agreement = any("segmentation_agreement" in row for row in rows)   # the model's mask next to the coded one
    per_image = []
    for row in rows:
        line = [row["image"], 100 * row["blade_fraction"]]
        if agreement:
            line.append(_get(row, "segmentation_agreement", "f1"))
        for mode in modes:
            m = row["modes"].get(mode, {})
            line += [_get(m, "bpp", "total"), "exact" if m.get("blade_exact") else _get(m, "quality", "blade", "psnr"),
                     edge_seconds(row, mode) if "stages" in m else None]
        per_image.append(line)
    headers = ["photo", "blade %"] + (["seg F1"] if agreement else [])
    for mode in modes:
        headers += [f"{mode} bpp", "blade dB", "edge s"]
    parts.append(table(headers, per_image, "\nPer photo"))

    stage_rows = [[STAGE_LABELS.get(s, s), *_mmm(v)] for s, v in summary["shared_stages"].items()]
    for mode, m in summary["modes"].items():
        stage_rows += [[f"{mode}: {STAGE_LABELS.get(s, s)}", *_mmm(v)] for s, v in m.get("stages", {}).items()]
    parts.append(table(["stage (seconds)", "min", "median", "max"], stage_rows, "\nStages"))

    speed = [[mode, _med(m.get("edge_seconds")), _med(m.get("photos_per_minute")),
              _med(m.get("photos_per_minute_full_size")), _med(m.get("offshore_photos_per_minute_full_size")),
              _med(_get(m, "peak_memory_mib", "encode")), _med(_get(m, "peak_memory_mib", "decode")),
              _med(_get(m, "sequential", "encode_speedup")), _med(_get(m, "sequential", "parallel_to_sequential_bits"))]
             for mode, m in summary["modes"].items() if "stages" in m]
    parts.append(table(["mode", "edge s/photo", "photos/min", "full-size photos/min", "offshore photos/min",
                        "peak MiB enc", "peak MiB dec", "parallel speed-up", "parallel/chain bits"], speed,
                       f"\nThroughput (medians; the flight needs "
                       f"{summary['uplink']['photos_per_minute_needed']:.1f} photos/min)"))

    rates = []
    for mode, m in summary["modes"].items():
        if "bpp" not in m:
            continue
        q = m["quality"]
        mask_bytes = _med(m["mask_bytes"])   # a median of two sizes can fall between bytes
        rates.append([f"ours: {mode}", _med(m["bpp"].get("total")), _med(m["bpp"].get("blade")),
                      _med(m["bpp"].get("background")),
                      "exact" if m.get("blade_exact") else _med(q["blade"]["psnr"]), _med(q["blade"]["ms_ssim"]),
                      _med(q["background"]["psnr"]), _med(q["background"]["ms_ssim"]), _med(m["source_ratio"]),
                      None if mask_bytes is None else round(mask_bytes)])
    for name, c in summary["classical"].items():
        if not name.startswith("roi_"):
            continue
        q = c["quality"]
        rates.append([f"classical ROI ({c['codec']}, {name[4:]} blade)", _med(c["bpp"]), None, None,
                      "exact" if name == "roi_lossless" else _med(q["blade"]["psnr"]), _med(q["blade"]["ms_ssim"]),
                      _med(q["background"]["psnr"]), _med(q["background"]["ms_ssim"]), _med(c["source_ratio"]),
                      None])
    parts.append(table(["method", "bpp", "blade bpp", "bg bpp", "blade dB", "blade MS-SSIM", "bg dB",
                        "bg MS-SSIM", "source/bundle", "mask B"], rates, "\nRates and quality (medians)"))
    versus = [[f"{c['matches']} vs classical ROI ({c['codec']})", *_mmm(c["ours_to_classical_bytes"]),
               c["reached"]] for name, c in summary["classical"].items() if name.startswith("roi_")]
    if versus:
        parts.append(table(["our bundle / classical bytes", "min", "median", "max", "targets reached"], versus))

    versus_jxl = summary["classical"].get("lossless_auto_to_jpegxl")
    if versus_jxl:
        parts.append(table(["lossless-auto blade / JPEG XL lossless", "min", "median", "max", "never larger"],
                           [["same 16-pixel cells", *_mmm(versus_jxl["ratio"]), versus_jxl["never_larger"]]]))

    learned = summary.get("learned")
    if learned:
        parts.append(table(["learned coder / classical, estimated bytes", "photos", "min", "median", "max"],
                           [[name, v["images"], *_mmm(v["to_classical"])] for name, v in learned.items()],
                           "\nLearned coders at the same target, on auto's calibration tiles "
                           "(background: against AVIF; blade: against JPEG XL lossless)"))

    blade = summary["classical"].get("lossless_blade_bits_per_pixel")
    if blade:
        ratio = blade.get("ours_to", {})
        parts.append(table(["codec", "bits per blade pixel", "ours / codec"],
                           [[codec, value, ratio.get(codec)] for codec, value in blade.items() if codec != "ours_to"],
                           "\nLossless blade (same blade patches)"))

    rd = summary["rd"]
    if rd:
        bd_rows = rd["bd_rate_of_ours"].items()
        parts.append(table(["BD-rate of ours vs", "mean %", "median %", "photos", "no common range"],
                           [[name, v["mean"], v["median"], v["images"], v.get("no_overlap", 0)] for name, v in bd_rows],
                           f"\nRate-distortion, whole image, RGB PSNR ({rd['crop'][1]}x{rd['crop'][0]} centre crops;"
                           f" negative = ours needs fewer bits)"))
        apart = [(name, v["apart"]) for name, v in bd_rows if v.get("apart")]
        if apart:
            parts.append(table(["no common PSNR range (medians)", "our best dB", "at bpp", "its lowest dB", "at bpp"],
                               [[name, a["ours_best"]["psnr"], a["ours_best"]["bpp"], a["its_lowest"]["psnr"],
                                 a["its_lowest"]["bpp"]] for name, a in apart]))

    uplink = summary["uplink"]
    f = uplink["flight"]
    parts.append(table(["method", "MB per photo", "upload min", "upload / flight", "keeps up"],
                       [[r["method"], r["bytes_per_photo"] / 1e6, r["upload_minutes"], r["upload_to_flight"],
                         r["keeps_up"]] for r in uplink["rows"]],
                       f"\nUplink: {f['photos']} full-size photos in {f['minutes']:g} min over "
                       f"{f['link_mbps']:g} Mbit/s"))
    errors = [e for m in summary["modes"].values() for e in m.get("errors", [])]
    if errors:
        parts.append("\nErrors:\n" + "\n".join(f"  {e}" for e in errors))
    return "\n".join(parts) + "\n"
