"""Two edge-bench results side by side: does a rerun give the same rates and ratios?

Rates, sizes and quality come from deterministic coders, so a rerun with the same settings
should give them again up to float noise (thread counts may move a transform's last bits,
and so a few coded symbols). Times and memory follow the machine's load: they are compared
as ratios (second run / first run), never judged.
"""
from __future__ import annotations

import statistics

RELATIVE_TOLERANCE = 0.005   # rates, sizes and size ratios: 0.5 %
PSNR_TOLERANCE_DB = 0.05
SCORE_TOLERANCE = 0.005      # MS-SSIM, segmentation F1 (0-1 scores)
BD_RATE_TOLERANCE = 1.0      # BD-rates are percentages: one percentage point


def rate_numbers(row: dict) -> dict[str, tuple[str, float | bool | None]]:
    """The numbers of one photo that a rerun must reproduce: name -> (kind, value)."""
    numbers: dict[str, tuple[str, float | bool | None]] = {}
    for mode, coded in row.get("modes", {}).items():
        numbers[f"{mode} bundle bytes"] = ("relative", coded["bytes"]["bundle"])
        for region, bpp in coded["bpp"].items():
            numbers[f"{mode} bpp {region}"] = ("relative", bpp)
        numbers[f"{mode} source ratio"] = ("relative", coded.get("source_ratio"))
        for region, quality in coded["quality"].items():
            numbers[f"{mode} {region} PSNR"] = ("psnr", quality.get("psnr"))
            numbers[f"{mode} {region} MS-SSIM"] = ("score", quality.get("ms_ssim"))
        if "blade_exact" in coded:
            numbers[f"{mode} blade exact"] = ("exact", coded["blade_exact"])
        sequential = coded.get("sequential") or {}
        if "bits" in sequential:
            numbers[f"{mode} sequential bits"] = ("relative", sequential["bits"])
    classical = row.get("classical") or {}
    for codec, coded in (classical.get("lossless_blade") or {}).get("codecs", {}).items():
        numbers[f"lossless blade {codec} bytes"] = ("relative", coded.get("bytes"))
    for name in ("roi_lossy", "roi_lossless"):
        if classical.get(name):
            numbers[f"classical {name} bytes"] = ("relative", classical[name].get("bytes"))
    rd = row.get("rd") or {}
    for point in rd.get("ours", []):
        numbers[f"rd ours q{point['parameter']} bytes"] = ("relative", point["bytes"])
    for codec, bd_rate in (rd.get("bd_rate") or {}).items():
        numbers[f"rd BD-rate vs {codec}"] = ("bd", bd_rate)
    agreement = row.get("segmentation_agreement")
    if agreement:
        numbers["segmentation F1"] = ("score", agreement.get("f1"))
    return numbers


def stage_seconds(row: dict) -> dict[str, float]:
    """Wall seconds of every timed stage of one photo: name -> seconds."""
    seconds = {f"shared {name}": value for name, value in row.get("stages", {}).items()}
    for mode, coded in row.get("modes", {}).items():
        seconds.update({f"{mode} {name}": value for name, value in coded.get("stages", {}).items()})
    return seconds


def _differs(kind: str, first, second) -> bool:
    if first is None or second is None:
        return (first is None) != (second is None)
    if kind == "exact":
        return bool(first) != bool(second)
    if kind == "relative":
        return abs(second - first) > RELATIVE_TOLERANCE * max(abs(first), abs(second), 1e-12)
    tolerance = {"psnr": PSNR_TOLERANCE_DB, "score": SCORE_TOLERANCE, "bd": BD_RATE_TOLERANCE}[kind]
    return abs(second - first) > tolerance


def compare_results(first: dict, second: dict) -> dict:
    """Per-number differences of the photos both results hold, and the time ratios."""
    rows_first = {row["image"]: row for row in first.get("images", [])}
    rows_second = {row["image"]: row for row in second.get("images", [])}
    common = [name for name in rows_first if name in rows_second]
    differences, one_sided, checked, ratios = [], [], 0, []
    for image in common:
        numbers_first, numbers_second = rate_numbers(rows_first[image]), rate_numbers(rows_second[image])
        # A number only one run measured (say, the sequential chain of its first photo) is listed, not judged.
        one_sided += [f"{image}: {name}" for name in sorted(set(numbers_first) ^ set(numbers_second))]
        for name in sorted(set(numbers_first) & set(numbers_second)):
            (kind, value_first), (_, value_second) = numbers_first[name], numbers_second[name]
            checked += 1
            if _differs(kind, value_first, value_second):
                differences.append({"image": image, "number": name, "first": value_first, "second": value_second})
        seconds_first, seconds_second = stage_seconds(rows_first[image]), stage_seconds(rows_second[image])
        ratios += [seconds_second[name] / seconds_first[name] for name in seconds_first
                   if name in seconds_second and seconds_first[name] >= 0.5]   # short stages are all noise
    return {
        "same_settings": first.get("settings", {}).get("key") == second.get("settings", {}).get("key"),
        "common_images": common,
        "only_first": [name for name in rows_first if name not in rows_second],
        "only_second": [name for name in rows_second if name not in rows_first],
        "numbers_checked": checked,
        "measured_in_one_run_only": one_sided,
        "differences": differences,
        "time_ratio": ({"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
                        "stages": len(ratios)} if ratios else None),
        "same": bool(common) and not differences,
    }


def format_comparison(comparison: dict, first_name: str, second_name: str) -> str:
    lines = [f"compare {first_name} (first) with {second_name} (second)"]
    if not comparison["same_settings"]:
        lines.append("  warning: the two runs have different settings keys (weights, modes or options)")
    lines.append(f"  photos in both: {len(comparison['common_images'])}"
                 + (f"; only in the first: {', '.join(comparison['only_first'])}" if comparison["only_first"] else "")
                 + (f"; only in the second: {', '.join(comparison['only_second'])}"
                    if comparison["only_second"] else ""))
    lines.append(f"  rates, sizes, quality: {comparison['numbers_checked']} numbers checked, "
                 f"{len(comparison['differences'])} differ beyond noise (rates {RELATIVE_TOLERANCE:.1%}, "
                 f"PSNR {PSNR_TOLERANCE_DB} dB, scores {SCORE_TOLERANCE}, BD-rates {BD_RATE_TOLERANCE} point)")
    for difference in comparison["differences"]:
        lines.append(f"    {difference['image']}: {difference['number']}: {difference['first']} -> "
                     f"{difference['second']}")
    if comparison["measured_in_one_run_only"]:
        lines.append(f"  measured in one run only (not compared): {'; '.join(comparison['measured_in_one_run_only'])}")
    ratio = comparison["time_ratio"]
    if ratio:
        lines.append(f"  stage times, second / first over {ratio['stages']} stages of 0.5 s or more: "
                     f"median {ratio['median']:.2f}, min {ratio['min']:.2f}, max {ratio['max']:.2f} "
                     f"(load-dependent, not judged)")
    if not comparison["common_images"]:
        lines.append("  verdict: nothing to compare (no photo in both)")
    else:
        lines.append("  verdict: " + ("same rates and quality within noise" if comparison["same"]
                                      else "the runs differ"))
    return "\n".join(lines)
