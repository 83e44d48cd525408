#!/usr/bin/env python3
"""Fixture for Diffusion's AnimateDiff pipeline, its image-folder-plus-adapter form, and an AnimateDiff LoRA.

Builds a tiny random diffusers AnimateDiffPipeline: the VAE, text encoder (hidden_act "gelu"),
tokenizer (model_max_length 16) and DDIM scheduler of fixtures_pipeline.py's pipeline (its `build`
run into a temporary folder and reloaded, so they are the same F16 weights), a UNet2DConditionModel
and a MotionAdapter, both redrawn with fixtures_pipeline.py's `randomise`; AnimateDiffPipeline turns
the two into a UNetMotionModel itself. Everything is saved with `save_pretrained` in float16, and the
tokenizer folders are replaced by the classic CLIP files (vocab.json, merges.txt, ...), as
fixtures_pipeline.py does. Writes, in Tests/Fixtures:

  animatediff_pipeline/          the AnimateDiffPipeline (unet/ is the UNetMotionModel, motion_adapter/ the adapter)
  animatediff_image/             the same VAE, text encoder, tokenizer, scheduler and image U-Net as a
                                 StableDiffusionPipeline folder (no safety checker)
  animatediff_motion_adapter/    the MotionAdapter alone (config.json, diffusion_pytorch_model.safetensors)
  lora/animatediff_lora.safetensors
                                 a PEFT LoRA (r 4, alpha 8) on every spatial and motion-module attention
                                 projection (to_q, to_k, to_v, to_out.0) of the UNetMotionModel, made with
                                 `unet.add_adapter` and saved with `AnimateDiffPipeline.save_lora_weights`
                                 (keys `unet.<path>.lora_A.weight`, F32, plus diffusers' `lora_adapter_metadata`)
  animatediff_pipeline_reference.safetensors, from the folder reloaded in float32:
    initial_latents      the starting noise [1, 4, 3, 8, 8]
    ddim_latents         final latents after 3 DDIM steps with guidance 7.5 (PROMPT, negative "")
    ddim_frames          those latents decoded, [3, 3, 16, 16] (frames, RGB, H, W), clamped to [-1, 1]
    euler_latents        3 Euler steps (EulerDiscreteScheduler.from_config), guidance 7.5
    noguidance_latents   2 DDIM steps, guidance 1 (no CFG)
    picture_latents      StableDiffusionPipeline with the image U-Net alone, one frame: initial_latents[:, :, 0],
                         3 DDIM steps, guidance 7.5 -> [1, 4, 8, 8]
    lora_ddim_latents    ddim_latents' run after `load_lora_weights(lora/animatediff_lora.safetensors)`

The sampling loop is written out here, mirroring AnimateDiffPipeline.__call__ (CFG batch [negative,
prompt], text states repeated per frame with repeat_interleave, scheduler.step on the 5-D latents),
and checked against the pipeline's own __call__ with output_type="latent"; the image folder plus the
separate adapter folder (`AnimateDiffPipeline.from_pretrained(image, motion_adapter=...)`) is checked
to give ddim_latents too.

Run by hand from the repository root:  python3 Tests/Fixtures/fixtures_animatediff_pipeline.py
Needs torch, diffusers (0.42.1), transformers, peft, safetensors. Reuses fixtures_pipeline.py.
"""
import os
import re
import shutil
import sys
import tempfile

import torch
from diffusers import (AnimateDiffPipeline, DDIMScheduler, EulerDiscreteScheduler, MotionAdapter,
                       StableDiffusionPipeline, TextToVideoSDPipeline, UNet2DConditionModel, UNetMotionModel)
from diffusers.configuration_utils import FrozenDict
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)
import fixtures_pipeline  # noqa: E402
from fixtures_pipeline import MAX_LENGTH, PROMPT, randomise  # noqa: E402

PIPELINE = os.path.join(ROOT, "animatediff_pipeline")
IMAGE = os.path.join(ROOT, "animatediff_image")
ADAPTER = os.path.join(ROOT, "animatediff_motion_adapter")
LORA_FOLDER = os.path.join(ROOT, "lora")
LORA_NAME = "animatediff_lora.safetensors"
REFERENCE = os.path.join(ROOT, "animatediff_pipeline_reference.safetensors")
FRAMES = 3

UNET_CONFIG = dict(
    sample_size=8, in_channels=4, out_channels=4,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
    cross_attention_dim=16, attention_head_dim=2,
)
ADAPTER_CONFIG = dict(
    block_out_channels=(8, 16), motion_layers_per_block=1, motion_num_attention_heads=2,
    motion_norm_num_groups=4, motion_max_seq_length=8,
)
# Every attention projection of the spatial transformers (down/mid/up `attentions`) and of the
# temporal transformers (`motion_modules`); PEFT full-matches a string target against module names.
LORA_TARGETS = r".*\.(attentions|motion_modules)\.\d+\.transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)"


# MARK: - Folders


def shared_components():
    """fixtures_pipeline.py's VAE, text encoder, tokenizer and scheduler, and its classic tokenizer files.

    Its `build` writes its whole pipeline; run it into a temporary folder and reload that in float32. The
    weights are its F16 ones, so they save again to the same bytes as Tests/Fixtures/pipeline/."""
    with tempfile.TemporaryDirectory() as tmp:
        saved, fixtures_pipeline.FOLDER = fixtures_pipeline.FOLDER, os.path.join(tmp, "pipeline")
        try:
            fixtures_pipeline.build()
            pipe = TextToVideoSDPipeline.from_pretrained(fixtures_pipeline.FOLDER, torch_dtype=torch.float32)
            tokenizer_folder = os.path.join(fixtures_pipeline.FOLDER, "tokenizer")
            tokenizer_files = {}
            for name in sorted(os.listdir(tokenizer_folder)):
                with open(os.path.join(tokenizer_folder, name), "rb") as f:
                    tokenizer_files[name] = f.read()
        finally:
            fixtures_pipeline.FOLDER = saved
    components = dict(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, scheduler=pipe.scheduler)
    # from_pretrained records the temporary folder as `_name_or_path` in diffusers configs; save_pretrained would write it.
    for component in (pipe.vae, pipe.scheduler):
        component._internal_dict = FrozenDict({k: v for k, v in component.config.items() if k != "_name_or_path"})
    return components, tokenizer_files


def tree(folder):
    lines = []
    for directory, subdirectories, files in os.walk(folder):
        subdirectories.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            lines.append(f"    {os.path.relpath(path, folder)}  ({os.path.getsize(path)} bytes)")
    return "\n".join(lines)


def check_f16(folder):
    for directory, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".safetensors"):
                weights = load_file(os.path.join(directory, name))
                dtypes = {v.dtype for v in weights.values()}
                assert dtypes == {torch.float16}, f"{name}: {dtypes}"


def save_pipeline(pipe, folder, tokenizer_files):
    """save_pretrained in float16; the tokenizer folder replaced by the classic CLIP files."""
    if os.path.exists(folder):
        shutil.rmtree(folder)
    pipe.to(torch.float16).save_pretrained(folder)
    tokenizer_folder = os.path.join(folder, "tokenizer")
    shutil.rmtree(tokenizer_folder)
    os.makedirs(tokenizer_folder)
    for name, data in tokenizer_files.items():
        with open(os.path.join(tokenizer_folder, name), "wb") as f:
            f.write(data)
    check_f16(folder)
    name = os.path.relpath(folder, ROOT)
    print(f"== {name}/model_index.json")
    print(open(os.path.join(folder, "model_index.json")).read())
    print(f"== {name}/ files")
    print(tree(folder))


def build():
    components, tokenizer_files = shared_components()
    torch.manual_seed(0)
    image_unet = UNet2DConditionModel(**UNET_CONFIG).eval()
    adapter = MotionAdapter(**ADAPTER_CONFIG).eval()
    randomise(image_unet, seed=41)
    randomise(adapter, seed=42)

    pipe = AnimateDiffPipeline(unet=image_unet, motion_adapter=adapter, **components)
    print(f"AnimateDiffPipeline.unet is {type(pipe.unet).__name__}, mid_block {type(pipe.unet.mid_block).__name__}")
    save_pipeline(pipe, PIPELINE, tokenizer_files)
    print("== animatediff_pipeline/unet/config.json")
    print(open(os.path.join(PIPELINE, "unet", "config.json")).read())

    image = StableDiffusionPipeline(unet=image_unet, safety_checker=None, feature_extractor=None,
                                    requires_safety_checker=False, **components)
    save_pipeline(image, IMAGE, tokenizer_files)

    if os.path.exists(ADAPTER):
        shutil.rmtree(ADAPTER)
    adapter.to(torch.float16).save_pretrained(ADAPTER)
    check_f16(ADAPTER)
    print("== animatediff_motion_adapter/ files")
    print(tree(ADAPTER))

    # The pipeline's motion_adapter/ and the separate adapter folder hold the same weights.
    in_pipeline = load_file(os.path.join(PIPELINE, "motion_adapter", "diffusion_pytorch_model.safetensors"))
    alone = load_file(os.path.join(ADAPTER, "diffusion_pytorch_model.safetensors"))
    assert set(in_pipeline) == set(alone) and all(torch.equal(in_pipeline[k], alone[k]) for k in alone)


# MARK: - Sampling


def sample(unet, scheduler, initial, prompt_embeds, negative_embeds, steps, guidance):
    """AnimateDiffPipeline.__call__'s denoising loop, written out; with 4-D latents, StableDiffusionPipeline's."""
    scheduler.set_timesteps(steps)
    latents = initial * scheduler.init_noise_sigma
    cfg = guidance > 1
    embeds = torch.cat([negative_embeds, prompt_embeds]) if cfg else prompt_embeds
    if initial.ndim == 5:
        embeds = embeds.repeat_interleave(initial.shape[2], dim=0)  # [B*F, L, D], frame-major per clip
    for t in scheduler.timesteps:
        model_input = torch.cat([latents] * 2) if cfg else latents
        model_input = scheduler.scale_model_input(model_input, t)
        noise_pred = unet(model_input, t, encoder_hidden_states=embeds).sample
        if cfg:
            uncond, cond = noise_pred.chunk(2)
            noise_pred = uncond + guidance * (cond - uncond)
        latents = scheduler.step(noise_pred, t, latents).prev_sample
    return latents


def text_states(pipe):
    def encode(text):
        ids = pipe.tokenizer(text, padding="max_length", max_length=MAX_LENGTH, truncation=True,
                             return_tensors="pt").input_ids
        return pipe.text_encoder(ids)[0]

    return encode(PROMPT), encode("")


def own_latents(pipe, scheduler_class, initial, steps, guidance):
    """The pipeline's own __call__, output_type="latent"."""
    pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
    return pipe(PROMPT, negative_prompt="", num_frames=initial.shape[2], num_inference_steps=steps,
                guidance_scale=guidance, latents=initial.clone(), output_type="latent").frames


def assert_close(a, b, what, atol=1e-5):
    difference = (a - b).abs().max().item()
    assert a.shape == b.shape and difference <= atol, f"{what}: {tuple(a.shape)} vs {tuple(b.shape)}, max |diff| {difference}"
    print(f"{what}: max |diff| {difference:.2e}")


def image_unet_of(motion_unet):
    """The UNet2DConditionModel inside a UNetMotionModel: its state dict without the motion modules."""
    image_unet = UNet2DConditionModel(**UNET_CONFIG).eval()
    state = {k: v for k, v in motion_unet.state_dict().items() if "motion_modules" not in k}
    image_unet.load_state_dict(state, strict=True)
    return image_unet


def record_lora(prompt_embeds, negative_embeds, initial, ddim_latents):
    """Makes the LoRA the way a diffusers user does, saves it, and runs it after load_lora_weights."""
    pipe = AnimateDiffPipeline.from_pretrained(PIPELINE, torch_dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS, init_lora_weights="gaussian")
    pipe.unet.add_adapter(config)
    # PEFT starts B at zero, which would hide errors: every factor drawn again.
    generator = torch.Generator().manual_seed(51)
    with torch.no_grad():
        for name, parameter in pipe.unet.named_parameters():
            if "lora_" in name:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    layers = get_peft_model_state_dict(pipe.unet)
    metadata = {"r": config.r, "lora_alpha": config.lora_alpha, "target_modules": LORA_TARGETS,
                "rank_pattern": {}, "alpha_pattern": {}, "use_rslora": False, "init_lora_weights": "gaussian"}
    os.makedirs(LORA_FOLDER, exist_ok=True)
    AnimateDiffPipeline.save_lora_weights(LORA_FOLDER, unet_lora_layers=layers, weight_name=LORA_NAME,
                                          unet_lora_adapter_metadata=metadata)
    path = os.path.join(LORA_FOLDER, LORA_NAME)
    with torch.no_grad():
        made = sample(pipe.unet, DDIMScheduler.from_config(pipe.scheduler.config), initial,
                      prompt_embeds, negative_embeds, steps=3, guidance=7.5)

    fresh = AnimateDiffPipeline.from_pretrained(PIPELINE, torch_dtype=torch.float32)
    fresh.load_lora_weights(path)
    with torch.no_grad():
        loaded = sample(fresh.unet, DDIMScheduler.from_config(fresh.scheduler.config), initial,
                        prompt_embeds, negative_embeds, steps=3, guidance=7.5)
        own = own_latents(fresh, DDIMScheduler, initial, steps=3, guidance=7.5)
    assert_close(loaded, made, "LoRA: load_lora_weights vs add_adapter")
    assert_close(own, loaded, "LoRA: __call__ vs written-out loop")
    change = (loaded - ddim_latents).abs().max().item()
    assert change > 1e-2, f"the LoRA barely changes the latents ({change})"
    print(f"LoRA changes ddim_latents by up to {change:.4f}")
    report_lora(path, layers)
    return loaded


def pattern(key):
    return re.sub(r"(?<=\.)\d+(?=\.)", "N", key.replace("to_out.0", "to_out#")).replace("to_out#", "to_out.0")


def report_lora(path, layers):
    weights = load_file(path)
    assert {v.dtype for v in weights.values()} == {torch.float32}
    assert set(weights) == {"unet." + k for k in layers}
    print(f"== lora/{LORA_NAME}: {len(weights)} tensors, {os.path.getsize(path)} bytes; key patterns (count, shapes):")
    patterns = {}
    for k, v in weights.items():
        patterns.setdefault(pattern(k), set()).add(tuple(v.shape))
    for p in sorted(patterns):
        count = sum(1 for k in weights if pattern(k) == p)
        print(f"    {p}  x{count}  {sorted(patterns[p])}")
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
    print("== metadata:")
    for k, v in sorted(metadata.items()):
        print(f"    {k}: {v}")

    # What diffusers hands its loader.
    state, alphas, loaded_metadata = AnimateDiffPipeline.lora_state_dict(path, return_lora_metadata=True)
    prefixes = sorted({k.split(".", 1)[0] for k in state})
    print(f"== AnimateDiffPipeline.lora_state_dict: {len(state)} keys, prefixes {prefixes}, network_alphas {alphas}, "
          f"unchanged from the file: {set(state) == set(weights)}")
    for k in sorted(state)[:4]:
        print(f"    {k}")
    print(f"    metadata: {loaded_metadata}")


def record():
    pipe = AnimateDiffPipeline.from_pretrained(PIPELINE, torch_dtype=torch.float32)
    print(f"reloaded: unet {type(pipe.unet).__name__}, motion_adapter {type(pipe.motion_adapter).__name__}, "
          f"feature_extractor {pipe.feature_extractor}, image_encoder {pipe.image_encoder}")
    assert isinstance(pipe.unet, UNetMotionModel)
    generator = torch.Generator().manual_seed(31)
    initial = torch.randn((1, 4, FRAMES, 8, 8), generator=generator)
    ref = {"initial_latents": initial}
    with torch.no_grad():
        prompt_embeds, negative_embeds = text_states(pipe)
        config = pipe.scheduler.config
        ref["ddim_latents"] = sample(pipe.unet, DDIMScheduler.from_config(config), initial,
                                     prompt_embeds, negative_embeds, steps=3, guidance=7.5)
        ref["euler_latents"] = sample(pipe.unet, EulerDiscreteScheduler.from_config(config), initial,
                                      prompt_embeds, negative_embeds, steps=3, guidance=7.5)
        ref["noguidance_latents"] = sample(pipe.unet, DDIMScheduler.from_config(config), initial,
                                           prompt_embeds, negative_embeds, steps=2, guidance=1.0)
        video = pipe.decode_latents(ref["ddim_latents"])  # [1, 3, F, H, W]
        ref["ddim_frames"] = video[0].permute(1, 0, 2, 3).clamp(-1, 1)

        # The written-out loop is the pipeline's own.
        assert_close(own_latents(pipe, DDIMScheduler, initial, 3, 7.5), ref["ddim_latents"], "ddim: __call__ vs loop")
        assert_close(own_latents(pipe, EulerDiscreteScheduler, initial, 3, 7.5), ref["euler_latents"],
                     "euler: __call__ vs loop")
        assert_close(own_latents(pipe, DDIMScheduler, initial, 2, 1.0), ref["noguidance_latents"],
                     "noguidance: __call__ vs loop")
        frames = pipe(PROMPT, negative_prompt="", num_frames=FRAMES, num_inference_steps=3, guidance_scale=7.5,
                      latents=initial.clone(), output_type="pt").frames  # [1, F, 3, H, W] in [0, 1]
        assert_close(frames[0], (ref["ddim_frames"] / 2 + 0.5).clamp(0, 1), "ddim_frames vs __call__ output_type pt")

        # The image folder plus the separate adapter folder make the same pipeline.
        split = AnimateDiffPipeline.from_pretrained(IMAGE, motion_adapter=MotionAdapter.from_pretrained(ADAPTER),
                                                    torch_dtype=torch.float32)
        assert isinstance(split.unet, UNetMotionModel)
        assert_close(own_latents(split, DDIMScheduler, initial, 3, 7.5), ref["ddim_latents"],
                     "image folder + motion adapter folder vs ddim_latents", atol=0)

        # One frame with the image U-Net alone, as StableDiffusionPipeline runs it.
        image_unet = image_unet_of(pipe.unet)
        saved_image_unet = UNet2DConditionModel.from_pretrained(os.path.join(IMAGE, "unet"), torch_dtype=torch.float32)
        for k, v in saved_image_unet.state_dict().items():
            assert torch.equal(v, image_unet.state_dict()[k]), k
        picture = StableDiffusionPipeline(
            vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=image_unet,
            scheduler=DDIMScheduler.from_config(config), safety_checker=None, feature_extractor=None,
            requires_safety_checker=False)
        first = initial[:, :, 0].clone()
        ref["picture_latents"] = picture(PROMPT, negative_prompt="", num_inference_steps=3, guidance_scale=7.5,
                                         latents=first.clone(), output_type="latent").images
        assert_close(sample(image_unet, DDIMScheduler.from_config(config), first, prompt_embeds, negative_embeds,
                            steps=3, guidance=7.5), ref["picture_latents"], "picture: loop vs StableDiffusionPipeline")
        assert ref["picture_latents"].shape == (1, 4, 8, 8)

    ref["lora_ddim_latents"] = record_lora(prompt_embeds, negative_embeds, initial, ref["ddim_latents"])
    ref = {k: v.contiguous() for k, v in ref.items()}
    save_file(ref, REFERENCE)
    print({k: (tuple(v.shape), round(v.abs().max().item(), 4)) for k, v in ref.items()})


if __name__ == "__main__":
    torch.set_num_threads(1)
    build()
    record()
