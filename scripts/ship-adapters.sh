#!/usr/bin/env bash
# Trains the shipped adapters on the shipped base model and puts them, in F16, where every command
# finds them on a fresh checkout: samples/loras/{cat,dog,robot}.safetensors (concept LoRAs for
# `compose` and `render --lora`) and samples/motions/zigzag/temporal.safetensors (MotionDirector's
# motion adapter for `render --motion`). An adapter is tied to the base it was trained on: run this
# again whenever samples/base changes.
#
#   scripts/ship-adapters.sh [RUNS]        (RUNS, default runs/adapters, keeps the training runs)
#
# Each run is resumed when RUNS already holds it, so a killed script continues where it stopped. A
# resumed run keeps its own recorded settings: after train-lora's or train-motion's defaults change,
# start from an empty RUNS, or the old runs end at once and their adapters are shipped again.
# Time on 2 cores (AMD EPYC Zen 4, alone on the machine): each concept LoRA ~1 min 10 s (train-lora's
# defaults, 2 000 steps), the motion adapter 8 min 40 s (train-motion's defaults, 1 500 steps).
set -euo pipefail
runs=${1:-runs/adapters}
customize=${CUSTOMIZE:-.build/release/customize}
model=${MODEL:-samples/base}
[ -x "$customize" ] || { echo "$customize: not built (swift build -c release), or set CUSTOMIZE" >&2; exit 1; }
[ -f "$model/model_index.json" ] || { echo "$model: not a diffusers folder" >&2; exit 1; }
mkdir -p "$runs" samples/loras samples/motions

# Writes $2 from $1 atomically (a copy beside it, then a rename).
install_file() {
    cp "$1" "$2.tmp-$$"
    mv "$2.tmp-$$" "$2"
}

for concept in cat dog robot; do
    out="$runs/$concept.safetensors"
    resume=()
    [ -d "$runs/$concept-run" ] && resume=(--resume)
    "$customize" train-lora "samples/concepts/$concept" --token "$concept" --out "$out" --dtype f16 \
        --model "$model" "${resume[@]}"
    install_file "$out" "samples/loras/$concept.safetensors"
done

resume=()
[ -f "$runs/zigzag/motion_run.json" ] && resume=(--resume)
"$customize" train-motion samples/clips --out "$runs/zigzag" --dtype f16 --model "$model" "${resume[@]}"
mkdir -p samples/motions/zigzag
install_file "$runs/zigzag/temporal.safetensors" samples/motions/zigzag/temporal.safetensors
du -sh samples/loras samples/motions
