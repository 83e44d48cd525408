#!/usr/bin/env bash
# Puts a pretraining run's model into samples/base (the shipped default model) with the probes
# that read its renders, replacing the folder only once the new one is complete.
#
#   scripts/ship-base.sh RUN/model [OUT]        (OUT defaults to samples/base)
#
# The probes do not depend on the model: those already in OUT/probes are kept; missing ones are
# trained with `customize eval train-probe` (shape ~1 min, concept ~2.5 min, style ~1.5 min on 2
# cores). OUT/README.md (the recipe and the figures) and OUT/recipe/ (the legs' configs) are kept as
# they are; update them by hand from
# `customize eval base --model OUT --prompts 100 --json`.
set -euo pipefail
model=${1:?usage: scripts/ship-base.sh RUN/model [OUT]}
out=${2:-samples/base}
customize=${CUSTOMIZE:-.build/release/customize}
[ -f "$model/model_index.json" ] || { echo "$model: not a diffusers folder (no model_index.json)" >&2; exit 1; }
[ -x "$customize" ] || { echo "$customize: not built (swift build -c release), or set CUSTOMIZE" >&2; exit 1; }

staging="$out.staging-$$"
trap 'rm -rf "$staging"' EXIT
mkdir -p "$(dirname "$out")"
cp -R "$model" "$staging"
rm -rf "$staging/probes"
mkdir -p "$staging/probes"
for kind in shape concept style; do
    file="$kind-classifier.safetensors"
    if [ -f "$out/probes/$file" ]; then
        cp "$out/probes/$file" "$staging/probes/$file"
    else
        "$customize" eval train-probe --kind "$kind" --out "$staging/probes/$file" --threads 2
    fi
done
[ -f "$out/README.md" ] && cp "$out/README.md" "$staging/README.md"
[ -d "$out/recipe" ] && cp -R "$out/recipe" "$staging/recipe"
if [ -d "$out" ]; then
    mv "$out" "$out.old-$$"
    mv "$staging" "$out"
    rm -rf "$out.old-$$"
else
    mv "$staging" "$out"
fi
du -sh "$out"
