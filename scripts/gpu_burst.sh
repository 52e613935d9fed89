#!/usr/bin/env bash
# Train every model for a few minutes on a leased GPU machine, from the shipped weights.
#
#   scripts/gpu_burst.sh pack [--data DIR] [--pack DIR]     here, where wta-train is (default
#       $EDGE_WTA_TRAIN): writes the compact training set to burst-pack/ (ignored by
#       git) and checks that it fits, with the repository, in the 64 MiB a lease takes.
#   scripts/gpu_burst.sh run --out DIR [--minutes 8] [--device cuda] [--pack DIR] [--work DIR]
#                            [--models lossy,implicit,lossless,seg] [--lite0 N]
#       there: needs no network and no pip, only the machine's python3 with torch, numpy,
#       opencv and tqdm (it says what is missing). Renders synthetic photos with `edge synth`,
#       runs `edge train all` so that its training ends within --minutes (scoring the shipped
#       weights and the candidates on the held-out scenes comes after: ~3.5 min on a 2-core
#       CPU with tests/data/wta-sample), and writes to DIR:
#       summary.json, logs.tar.gz and candidates.tar.NN (parts of 15 MiB, to fit the lease's
#       16 MiB per file). The training folder itself stays in --work (default /tmp/edge-burst).
#       --lite0 N (0-3, default 0) trains, beside them, N runs of the pretrained-encoder network
#       (bunetv2-lite0) from its shipped weights, each with its own augmentation recipe, for a
#       model soup made here (`edge train soup`); their last checkpoints (fp16, no optimiser)
#       come back as lite0.tar.NN.
#   scripts/gpu_burst.sh unpack DIR DEST      here: joins and unpacks DIR's candidates into
#       DEST; then `edge train promote DEST/train --data WTA` ships those that are clearly better
#       (and the lite0 runs into DEST/lite0: `edge train soup`, then judge as its model card says).
#   Relative paths are taken from where the script is called.
set -euo pipefail
HERE=$PWD         # relative paths in the arguments are the caller's
cd "$(dirname "$0")/.."
ROOT=$PWD
PACK=burst-pack
LIMIT_MIB=64

die() { echo "gpu_burst: error: $*" >&2; exit 2; }
from_here() { if [[ $1 == /* ]]; then echo "$1"; else echo "$HERE/$1"; fi; }

python_here() {   # this checkout's environment if there is one, else the machine's python3
    if [[ -x .venv/bin/python ]]; then echo .venv/bin/python; else echo python3; fi
}

tree_bytes() {    # what a lease copies: tracked and untracked-not-ignored files, plus the pack
    # (du fails on tracked files deleted from the working tree; its total of the others stands)
    git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1 ||
        true
}

cmd_pack() {
    local data=${EDGE_WTA_TRAIN:-}
    while [[ $# -gt 0 ]]; do
        case $1 in
            --data) data=$(from_here "$2"); shift 2 ;;
            --pack) PACK=$(from_here "$2"); shift 2 ;;
            *) die "pack: unknown option $1" ;;
        esac
    done
    [[ -n $data ]] || die "pack: no wta-train folder: give --data DIR or set EDGE_WTA_TRAIN=DIR"
    [[ -d $data/images && -d $data/masks ]] || die "pack: $data is not a wta-train folder (images/, masks/)"
    rm -rf "$PACK"
    PYTHONPATH=. "$(python_here)" -m edge.train.pack "$data" "$PACK"
    local repo pack total
    repo=$(tree_bytes)
    pack=$(du -sb "$PACK" | cut -f1)
    total=$((repo + pack))
    awk -v p="$pack" -v r="$repo" -v t="$total" -v l="$LIMIT_MIB" -v n="$PACK" 'BEGIN {
        printf "packed set %s: %.1f MiB; repository working tree %.1f MiB; together %.1f MiB of %d MiB\n",
               n, p / 1048576, r / 1048576, t / 1048576, l }'
    ((total < LIMIT_MIB * 1048576)) || die "pack: more than $LIMIT_MIB MiB together; pack fewer crops"
    if [[ $(realpath "$PACK") != "$ROOT"/* ]]; then
        echo "gpu_burst: note: $PACK is outside the repository; a lease carries only paths inside it"
    elif ! git check-ignore -q "$PACK"; then
        echo "gpu_burst: warning: $PACK is not ignored by git" >&2
    fi
}

check_machine() {   # what `edge train all` imports there; say what is missing and stop
    local device=$1 py=$2
    "$py" - "$device" <<'EOF' || exit 3
import importlib, sys
missing = []
for name in ("torch", "numpy", "cv2", "tqdm"):
    try:
        importlib.import_module(name)
    except ImportError as error:
        missing.append(f"{name} ({error})")
if missing:
    sys.exit("gpu_burst: missing Python packages: " + ", ".join(missing) + f" (python {sys.executable})")
import torch
line = f"gpu_burst: python {sys.version.split()[0]}, torch {torch.__version__}"
if torch.cuda.is_available():
    line += f", {torch.cuda.get_device_name(0)}"
print(line)
for name, use in (("PIL", "synthetic photos (edge synth); training goes on without them"),
                  ("constriction", "exporting shipped weights, which `edge train promote` does where it is")):
    try:
        importlib.import_module(name)
    except ImportError:
        print(f"gpu_burst: note: {name} is not installed here; it serves {use}")
try:    # the commands the run uses, with every trainer they import
    for name in ("edge.cli", "edge.commands.train", "edge.train.all", "edge.commands.synth"):
        importlib.import_module(name)
except ImportError as error:
    sys.exit(f"gpu_burst: the training code cannot be imported here: {error}")
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    sys.exit("gpu_burst: --device cuda but torch sees no GPU")
EOF
}

cmd_run() {
    local out="" minutes=8 device=cuda work=/tmp/edge-burst models="" lite0=0
    while [[ $# -gt 0 ]]; do
        case $1 in
            --out) out=$(from_here "$2"); shift 2 ;;
            --minutes) minutes=$2; shift 2 ;;
            --device) device=$2; shift 2 ;;
            --pack) PACK=$(from_here "$2"); shift 2 ;;
            --work) work=$(from_here "$2"); shift 2 ;;
            --models) models=$2; shift 2 ;;
            --lite0) lite0=$2; shift 2 ;;
            *) die "run: unknown option $1" ;;
        esac
    done
    [[ -n $out ]] || die "run: --out DIR is required"
    [[ -f $PACK/pack.json ]] || die "run: no packed set at $PACK (run 'scripts/gpu_burst.sh pack' first, and carry it)"
    local started py
    started=$(date +%s)
    py=$(python_here)
    export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
    check_machine "$device" "$py"
    mkdir -p "$out"
    rm -rf "$work"
    mkdir -p "$work"
    local cores
    cores=$(nproc)
    # Synthetic inspection photos, rendered here (they need not travel): 96 frames of 1280x720 on
    # a GPU machine (2 turbines x 3 blades x 4 surfaces x 4), 2 on a CPU (rendering takes ~1.5 s
    # a frame there and would eat a small budget).
    local shape=(--turbines 2 --images-per-surface 4)
    [[ $device == cpu ]] && shape=(--turbines 1 --blades 1 --surfaces PS,SS --images-per-surface 1)
    "$py" -m edge.cli synth "$work/synth" "${shape[@]}" --size 1280x720 --workers "$cores" --seed 7 \
        >"$work/synth.log" 2>&1 ||
        { echo "gpu_burst: edge synth failed (see $work/synth.log); training without synthetic photos"; rm -rf "$work/synth"; }
    local synth=()
    [[ -d $work/synth ]] && synth=(--synth "$work/synth")
    # The rest of the budget for training, less half a minute for writing the results.
    local left
    left=$("$py" -c "print(round(($minutes * 60 - ($(date +%s) - $started) - 30) / 60, 3))")
    "$py" -c "import sys; sys.exit($left < 0.2)" || die "run: no time left for training after the synthetic photos"
    echo "gpu_burst: $left minutes for \`edge train all\` on $device"
    LITE0_PIDS=()
    start_lite0 "$lite0" "$left" "$device" "$py" "$work/lite0"
    local status=0
    local subset=()
    [[ -n $models ]] && subset=(--models "$models")
    "$py" -m edge.cli train all --out "$work/train" --minutes "$left" --device "$device" --data "$PACK" "${subset[@]}" \
        "${synth[@]}" 2>&1 | tee "$work/train-all.log" || status=$?
    for pid in "${LITE0_PIDS[@]}"; do wait "$pid" || echo "gpu_burst: a lite0 run failed (see $work/lite0/*/stdout.log)"; done
    # What comes back: at most 8 files of 16 MiB each, so the candidates travel as parts.
    cp "$work/train/summary.json" "$out/" 2>/dev/null || echo "gpu_burst: no summary.json written" >&2
    (cd "$work" && shopt -s nullglob && tar czf "$out/logs.tar.gz" train-all.log synth.log train/summary.json \
        train/*/*.log train/*/*.jsonl 2>/dev/null) || true
    if compgen -G "$work/train/*/candidate.pt" >/dev/null; then
        (cd "$work" && tar cf - train/*/candidate.pt) | split -b 15M -d - "$out/candidates.tar."
    fi
    if compgen -G "$work/lite0/*/last.pt" >/dev/null; then
        "$py" -m edge.train.slim "$work"/lite0/*/last.pt
        (cd "$work" && tar cf - lite0/*/last.pt lite0/*/train.log lite0/*/stdout.log) | split -b 15M -d - "$out/lite0.tar."
    fi
    printf 'gpu_burst: done in %d s; results in %s:\n' "$(($(date +%s) - started))" "$out"
    ls -l "$out"
    return "$status"
}

# The lite0 runs of --lite0 N: the augmentation recipes of the runs souped for weights 3
# (edge/weights/bunetv2_lite0.md), each from the shipped weights, batch 16 on a GPU.
LITE0_RECIPES=("field:--seed 0" "paste:--blade-paste 0.5 --seed 1" "field2:--seed 2")

start_lite0() {   # count minutes device python folder: start the runs in the background (LITE0_PIDS)
    local count=$1 minutes=$2 device=$3 py=$4 dir=$5
    ((count <= ${#LITE0_RECIPES[@]})) || die "run: --lite0 at most ${#LITE0_RECIPES[@]}"
    local train_minutes grace_seconds
    # As \`edge train all\` gives its trainers: 0.9 of the minutes less 20 s of loading. A run still
    # going a minute after that is stopped (its last checkpoint stands); SIGTERM, since a background
    # job of a script ignores SIGINT.
    train_minutes=$("$py" -c "print(round(max(0.05, $minutes * 0.9 - 20 / 60), 3))")
    grace_seconds=$("$py" -c "print(round($train_minutes * 60 + 80))")
    local index name flags
    for ((index = 0; index < count; index++)); do
        name=${LITE0_RECIPES[index]%%:*}
        flags=${LITE0_RECIPES[index]#*:}
        mkdir -p "$dir/$name"
        # shellcheck disable=SC2086  # the recipe's flags split into words
        timeout --kill-after=30 "$grace_seconds" \
            "$py" -m edge.cli train seg --arch bunetv2-lite0 --init-from edge/weights/bunetv2_lite0.pt \
            --data "$PACK/frames" --ckpt-dir "$dir/$name" --device "$device" --minutes "$train_minutes" \
            --steps 1000000000 --batch 16 --crop 288 --lr 2e-4 --encoder-lr-scale 0.3 --closeup-weight 2 \
            --crf-weight 0.05 --crf-ramp 1 --colour-jitter 0.2 --channel-shuffle 0.3 --field-recolour 0.5 \
            --eval-every 250 --ckpt-every 100 --threads 1 --workers 3 $flags >"$dir/$name/stdout.log" 2>&1 &
        LITE0_PIDS+=($!)
    done
}

cmd_unpack() {
    [[ $# -eq 2 ]] || die "unpack: give the run's --out folder and a destination"
    local out dest
    out=$(from_here "$1")
    dest=$(from_here "$2")
    compgen -G "$out/candidates.tar.*" >/dev/null || die "unpack: no candidates.tar.* in $out"
    mkdir -p "$dest"
    cat "$out"/candidates.tar.* | tar xf - -C "$dest"
    if compgen -G "$out/lite0.tar.*" >/dev/null; then cat "$out"/lite0.tar.* | tar xf - -C "$dest"; fi
    [[ -f $out/logs.tar.gz ]] && tar xzf "$out/logs.tar.gz" -C "$dest"
    echo "unpacked into $dest/train; next: edge train promote $dest/train --data WTA (or set EDGE_WTA_TRAIN)"
}

case ${1:-} in
    pack) shift; cmd_pack "$@" ;;
    run) shift; cmd_run "$@" ;;
    unpack) shift; cmd_unpack "$@" ;;
    *) sed -n '2,23p' scripts/gpu_burst.sh; exit 2 ;;
esac
