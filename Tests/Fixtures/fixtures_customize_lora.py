#!/usr/bin/env python3
"""A LoRA written by customize, loaded by diffusers: the other direction of the AnimateDiff LoRA fixtures.

Tests/Fixtures/lora/customize_animatediff_lora.safetensors was written by customize itself, trained
on the tiny AnimateDiff pipeline fixture (Tests/Fixtures/animatediff_pipeline, written by
fixtures_animatediff_pipeline.py):

    customize train-lora samples/concepts/cat --token "<cat>" --class cat \
      --model Tests/Fixtures/animatediff_pipeline --steps 4 --lr 0.05 --rank 4 \
      --checkpoint-every 2 --preview-every 0 --threads 1 --out Tests/Fixtures/lora/customize_animatediff_lora.safetensors

This script loads that file with diffusers' own `AnimateDiffPipeline.load_lora_weights` and records,
into Tests/Fixtures/lora/customize_animatediff_lora_reference.safetensors:
  lora_ddim_latents   3 DDIM steps, guidance 7.5, "a photo of a cat", from the pipeline fixture's
                      initial_latents, with the LoRA loaded (AnimateDiffPipeline's own __call__)
and checks that the LoRA changes the result (so a loader that dropped it would fail the Swift test).

Run by hand from the repository root:  python3 Tests/Fixtures/fixtures_customize_lora.py
Needs torch, diffusers (0.42.1), peft, safetensors.
"""
import os
import sys

import torch
from diffusers import AnimateDiffPipeline, DDIMScheduler
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures_animatediff_pipeline import PIPELINE, REFERENCE, own_latents  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
LORA = os.path.join(ROOT, "lora", "customize_animatediff_lora.safetensors")
OUT = os.path.join(ROOT, "lora", "customize_animatediff_lora_reference.safetensors")


def main():
    initial = load_file(REFERENCE)["initial_latents"]
    plain = AnimateDiffPipeline.from_pretrained(PIPELINE, torch_dtype=torch.float32)
    with torch.no_grad():
        without = own_latents(plain, DDIMScheduler, initial, steps=3, guidance=7.5)
    pipe = AnimateDiffPipeline.from_pretrained(PIPELINE, torch_dtype=torch.float32)
    pipe.load_lora_weights(LORA)
    loaded = [name for name, module in pipe.unet.named_modules() if hasattr(module, "lora_A") and len(module.lora_A) > 0]
    print(f"diffusers loaded the LoRA onto {len(loaded)} modules")
    with torch.no_grad():
        latents = own_latents(pipe, DDIMScheduler, initial, steps=3, guidance=7.5)
    effect = (latents - without).abs().max().item()
    scale = latents.abs().max().item()
    print(f"LoRA effect on the final latents: max |diff| {effect:.4f} against max |latents| {scale:.4f}")
    assert effect > 1e-2 * scale, "the LoRA hardly changes the latents: the Swift check would not tell loading from ignoring it"
    save_file({"lora_ddim_latents": latents.contiguous()}, OUT)


if __name__ == "__main__":
    main()
