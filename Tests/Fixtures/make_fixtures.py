#!/usr/bin/env python3
"""Regenerates every parity fixture the Swift tests read. Run by hand from the repository root:

    pip install torch diffusers transformers safetensors peft numpy ml_dtypes
    python3 Tests/Fixtures/make_fixtures.py

Each script builds tiny random-weight reference models (diffusers, transformers, peft) or runs the
reference code (safetensors, schedulers, tokenizer), and saves weights, inputs and outputs under
Tests/Fixtures/. CI never runs this: the outputs are committed, and the tests need no Python.
"""
import os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = [
    "make_safetensors_fixture.py",   # byte-exact safetensors files from the reference library
    "make_tokenizer_fixture.py",     # CLIPTokenizer ids for tricky prompts
    "make_scheduler_fixture.py",     # DDPM / DDIM / Euler steps
    "fixtures_clip.py",              # CLIPTextModel
    "fixtures_unet_vae.py",          # UNet3DConditionModel and AutoencoderKL
    "fixtures_animatediff.py",       # UNet2DConditionModel, MotionAdapter and UNetMotionModel
    "fixtures_animatediff_pipeline.py",  # a tiny F16 AnimateDiffPipeline folder, its image + adapter form, a LoRA
    "fixtures_customize_lora.py",    # diffusers loads a LoRA customize wrote for that folder (see its docstring)
    "fixtures_pipeline.py",          # a tiny F16 pipeline folder and reference sampling
    "fixtures_lora.py",              # a PEFT LoRA on the tiny U-Net
]

if __name__ == "__main__":
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, os.path.join(HERE, script)], check=True)
