#!/usr/bin/env python3
"""Fixture for Diffusion's TextToVideoPipeline and Models' DiffusersFolder.

Builds a tiny random diffusers TextToVideoSDPipeline (UNet3DConditionModel, AutoencoderKL, a
CLIPTextModel with hidden_act "gelu", the fixture CLIP tokenizer with model_max_length 16, and
ModelScope's DDIM scheduler config), saves it with `save_pretrained` in float16 into
Tests/Fixtures/pipeline/, reloads it in float32 and records, into
Tests/Fixtures/pipeline_reference.safetensors:
  initial_latents                 the starting noise [1, 4, 3, 8, 8]
  prompt_ids, negative_ids        the token ids of PROMPT and of "" (as F32)
  prompt_embeds, negative_embeds  the text encoder's last hidden states for them
  ddim_latents                    final latents after 3 DDIM steps with guidance 7.5
  ddim_frames                     those latents decoded, [3, 3, 16, 16] (frames, RGB, H, W)
  euler_latents                   final latents after 3 Euler steps (EulerDiscreteScheduler.from_config)
  noguidance_latents              final latents after 2 DDIM steps with guidance 1 (no CFG)
The sampling loop is written out here, mirroring TextToVideoSDPipeline.__call__ (CFG with the
empty negative prompt batched as uncond, cond), and checked against the pipeline's own __call__
with output_type="latent".

transformers 5 saves tokenizers as tokenizer.json only; the tokenizer folder is therefore
replaced by the classic CLIP files (vocab.json, merges.txt, ...) the Hub's pipelines carry.

Run by hand from the repository root:  python3 Tests/Fixtures/fixtures_pipeline.py
Needs torch, diffusers, transformers, safetensors.
"""
import json
import os
import shutil

import torch
from diffusers import (AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, TextToVideoSDPipeline,
                       UNet3DConditionModel)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

ROOT = os.path.dirname(os.path.abspath(__file__))
FOLDER = os.path.join(ROOT, "pipeline")
PROMPT = "a photo of a cat"
MAX_LENGTH = 16


def randomise(model, seed):
    """Every parameter drawn again: matrices ~ N(0, 1/fan_in), norm scales ~ 1 + N(0, 0.1²), biases ~ N(0, 0.1²)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
            if "embedding" in name and parameter.ndim == 2 and "time" not in name:
                parameter.copy_(noise)
            elif parameter.ndim >= 2:
                parameter.copy_(noise / parameter[0].numel() ** 0.5)
            elif name.endswith("weight"):
                parameter.copy_(1 + 0.1 * noise)
            else:
                parameter.copy_(0.1 * noise)


def build():
    torch.manual_seed(0)
    unet = UNet3DConditionModel(
        sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
        cross_attention_dim=16, attention_head_dim=4,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16), layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=16,
    )
    tokenizer_source = os.path.join(ROOT, "tokenizer")
    vocabulary = json.load(open(os.path.join(tokenizer_source, "vocab.json")))
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_source, model_max_length=MAX_LENGTH)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocabulary), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=MAX_LENGTH, hidden_act="gelu", projection_dim=16,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = DDIMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )
    for seed, model in enumerate((unet, vae, text_encoder), start=21):
        randomise(model, seed)
    pipe = TextToVideoSDPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
    if os.path.exists(FOLDER):
        shutil.rmtree(FOLDER)
    pipe.to(torch.float16).save_pretrained(FOLDER)

    tokenizer_folder = os.path.join(FOLDER, "tokenizer")
    shutil.rmtree(tokenizer_folder)
    os.makedirs(tokenizer_folder)
    for name in ("vocab.json", "merges.txt", "special_tokens_map.json"):
        shutil.copy(os.path.join(tokenizer_source, name), tokenizer_folder)
    config = json.load(open(os.path.join(tokenizer_source, "tokenizer_config.json")))
    config["model_max_length"] = MAX_LENGTH
    with open(os.path.join(tokenizer_folder, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


def sample(pipe, scheduler, initial, prompt_embeds, negative_embeds, steps, guidance):
    """TextToVideoSDPipeline.__call__'s denoising loop, written out."""
    scheduler.set_timesteps(steps)
    latents = initial * scheduler.init_noise_sigma
    cfg = guidance > 1
    embeds = torch.cat([negative_embeds, prompt_embeds]) if cfg else prompt_embeds
    for t in scheduler.timesteps:
        model_input = torch.cat([latents] * 2) if cfg else latents
        model_input = scheduler.scale_model_input(model_input, t)
        noise_pred = pipe.unet(model_input, t, encoder_hidden_states=embeds).sample
        if cfg:
            uncond, cond = noise_pred.chunk(2)
            noise_pred = uncond + guidance * (cond - uncond)
        b, c, f, h, w = latents.shape
        flat = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        flat_pred = noise_pred.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        flat = scheduler.step(flat_pred, t, flat).prev_sample
        latents = flat[None, :].reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
    return latents


def record():
    pipe = TextToVideoSDPipeline.from_pretrained(FOLDER, torch_dtype=torch.float32)
    generator = torch.Generator().manual_seed(31)
    initial = torch.randn((1, 4, 3, 8, 8), generator=generator)

    def ids(text):
        return pipe.tokenizer(text, padding="max_length", max_length=MAX_LENGTH, truncation=True, return_tensors="pt").input_ids

    prompt_ids, negative_ids = ids(PROMPT), ids("")
    ref = {"initial_latents": initial, "prompt_ids": prompt_ids.float(), "negative_ids": negative_ids.float()}
    with torch.no_grad():
        prompt_embeds = pipe.text_encoder(prompt_ids)[0]
        negative_embeds = pipe.text_encoder(negative_ids)[0]
        ref["prompt_embeds"], ref["negative_embeds"] = prompt_embeds, negative_embeds
        ddim = DDIMScheduler.from_config(pipe.scheduler.config)
        ref["ddim_latents"] = sample(pipe, ddim, initial, prompt_embeds, negative_embeds, steps=3, guidance=7.5)
        euler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
        ref["euler_latents"] = sample(pipe, euler, initial, prompt_embeds, negative_embeds, steps=3, guidance=7.5)
        ref["noguidance_latents"] = sample(pipe, DDIMScheduler.from_config(pipe.scheduler.config), initial,
                                           prompt_embeds, negative_embeds, steps=2, guidance=1.0)
        video = pipe.decode_latents(ref["ddim_latents"])  # [1, 3, F, H, W]
        ref["ddim_frames"] = video[0].permute(1, 0, 2, 3).clamp(-1, 1)

        # The written-out loop is the pipeline's own.
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        own = pipe(PROMPT, num_frames=3, num_inference_steps=3, guidance_scale=7.5, latents=initial.clone(),
                   output_type="latent").frames
        assert torch.allclose(own, ref["ddim_latents"], atol=1e-5), (own - ref["ddim_latents"]).abs().max()
    ref = {k: v.contiguous() for k, v in ref.items()}
    save_file(ref, os.path.join(ROOT, "pipeline_reference.safetensors"))
    print({k: round(v.abs().max().item(), 4) for k, v in ref.items()})


if __name__ == "__main__":
    torch.set_num_threads(1)
    build()
    record()
