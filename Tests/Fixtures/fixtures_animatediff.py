#!/usr/bin/env python3
"""Parity fixtures for Models' UNet2DConditionModel, MotionAdapter and UNetMotionModel (AnimateDiff).

Follows fixtures_unet_vae.py (and reuses its `randomise` and `save_model`): tiny diffusers models,
every parameter redrawn from a seeded generator, float32 throughout. Writes:

  unet2d/                       UNet2DConditionModel
    config.json, diffusion_pytorch_model.safetensors
    io.safetensors              suffixes b2 ([2,4,8,8]) and odd ([1,4,7,5])
    gradients.safetensors       d sum(output * cotangent) / d (sample, text states, every parameter)
  animatediff/                  UNetMotionModel.from_unet2d(unet2d, adapter)
    motion_adapter/             MotionAdapter (save_pretrained, safetensors, F32)
    unet/                       UNetMotionModel (config.json, diffusion_pytorch_model.safetensors)
    io.safetensors              suffixes f3, f5, f1, odd
    gradients.safetensors       3 frames, batch 2
  animatediff_two_layers/       layers_per_block 2, no motion mid block (UNetMidBlock2DCrossAttn)
    image_unet/                 the UNet2DConditionModel it came from
    motion_adapter/, unet/
    io.safetensors              suffixes f3, f6
    gradients.safetensors       3 frames, batch 1

UNetMotionModel.forward takes text states already repeated per frame ([B*F, L, D]); the fixtures store
the per-clip states [B, L, D] (what the Swift side takes, it repeats them internally) under
`encoder_hidden_states_<suffix>`, and `grad.encoder_hidden_states` is the gradient with respect to
those per-clip states (through the repeat_interleave). The state dicts keep diffusers' persistent
`...pos_embed.pe` buffers (sinusoidal tables); they are not parameters and have no gradient.

Run by hand from the repository root:  python3 Tests/Fixtures/fixtures_animatediff.py
Needs torch, diffusers, safetensors.
"""
import os
import sys
import tempfile

import torch
from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2DCrossAttn
from diffusers.models.unets.unet_motion_model import UNetMidBlockCrossAttnMotion
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)
from fixtures_unet_vae import randomise, save_model  # noqa: E402


def max_output(io):
    return max(v.abs().max().item() for k, v in io.items() if k.startswith("output"))


def build_unet2d(layers_per_block, seed):
    torch.manual_seed(0)
    model = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=layers_per_block,
        norm_num_groups=8,
        cross_attention_dim=16,
        attention_head_dim=2,
    ).eval()
    randomise(model, seed=seed)
    return model


def build_adapter(seed, **kwargs):
    torch.manual_seed(0)
    adapter = MotionAdapter(block_out_channels=(16, 32), motion_norm_num_groups=8, **kwargs).eval()
    randomise(adapter, seed=seed)
    return adapter


def save_adapter(adapter, folder):
    """save_pretrained writes config.json and diffusion_pytorch_model.safetensors, like the Hub checkpoints."""
    adapter.save_pretrained(folder, safe_serialization=True)
    weights = load_file(os.path.join(folder, "diffusion_pytorch_model.safetensors"))
    assert all(v.dtype == torch.float32 for v in weights.values())
    expected = adapter.state_dict()
    assert set(weights) == set(expected), "adapter file keys differ from its state_dict"
    for k, v in expected.items():
        assert torch.equal(weights[k], v), k
    return weights


# MARK: - UNet2DConditionModel


def unet2d_fixture():
    model = build_unet2d(layers_per_block=1, seed=11)
    folder = os.path.join(ROOT, "unet2d")
    count = save_model(model, folder)
    generator = torch.Generator().manual_seed(12)
    io = {}
    for suffix, shape, timesteps in (("b2", (2, 4, 8, 8), [10.0, 731.0]), ("odd", (1, 4, 7, 5), [400.0])):
        sample = torch.randn(shape, generator=generator)
        text = torch.randn((shape[0], 5, 16), generator=generator)
        timesteps = torch.tensor(timesteps)
        with torch.no_grad():
            out = model(sample, timesteps, encoder_hidden_states=text).sample
        io[f"sample_{suffix}"] = sample
        io[f"encoder_hidden_states_{suffix}"] = text
        io[f"timesteps_{suffix}"] = timesteps
        io[f"output_{suffix}"] = out.contiguous()
    save_file(io, os.path.join(folder, "io.safetensors"))
    print(f"unet2d: {count} parameters, output max |x| {max_output(io)}")
    unet2d_gradient_fixture(model, folder)
    return model


def unet2d_gradient_fixture(model, folder):
    generator = torch.Generator().manual_seed(15)
    sample = torch.randn((2, 4, 8, 8), generator=generator).requires_grad_(True)
    text = torch.randn((2, 5, 16), generator=generator).requires_grad_(True)
    timesteps = torch.tensor([57.0, 905.0])
    cotangent = torch.randn((2, 4, 8, 8), generator=generator)
    model.zero_grad()
    out = model(sample, timesteps, encoder_hidden_states=text).sample
    (out * cotangent).sum().backward()
    grads = {"sample": sample.detach(), "encoder_hidden_states": text.detach(), "timesteps": timesteps,
             "cotangent": cotangent, "grad.sample": sample.grad, "grad.encoder_hidden_states": text.grad}
    for name, parameter in model.named_parameters():
        grads["grad." + name] = parameter.grad
    save_file({k: v.contiguous() for k, v in grads.items()}, os.path.join(folder, "gradients.safetensors"))
    model.zero_grad(set_to_none=True)
    print(f"unet2d gradients: {len(grads) - 4} tensors")


# MARK: - UNetMotionModel


def motion_forward(model, sample, timesteps, text):
    """`text` is per clip, [B, L, D]; diffusers wants it repeated per frame, [B*F, L, D]."""
    frames = sample.shape[2]
    return model(sample, timesteps, encoder_hidden_states=text.repeat_interleave(frames, dim=0)).sample


def check_weights_copied(unet, image_unet, adapter):
    """Every tensor of the motion U-Net comes from the image U-Net or the adapter, under the same name."""
    image_state, adapter_state = image_unet.state_dict(), adapter.state_dict()
    for k, v in unet.state_dict().items():
        source = adapter_state if "motion_modules" in k else image_state
        assert k in source, f"{k} in neither source"
        assert torch.equal(v, source[k]), k
    assert sum(1 for k in unet.state_dict() if "motion_modules" in k) == len(adapter_state)


def motion_fixture(name, image_unet, adapter, io_cases, gradient_batch, seed):
    folder = os.path.join(ROOT, name)
    unet = UNetMotionModel.from_unet2d(image_unet, adapter).eval()
    check_weights_copied(unet, image_unet, adapter)

    adapter_weights = save_adapter(adapter, os.path.join(folder, "motion_adapter"))
    unet_folder = os.path.join(folder, "unet")
    save_model(unet, unet_folder)
    state = unet.state_dict()
    pe_unet = [k for k in state if k.endswith("pos_embed.pe")]
    pe_adapter = [k for k in adapter_weights if k.endswith("pos_embed.pe")]
    parameters = sum(p.numel() for p in unet.parameters())
    adapter_parameters = sum(p.numel() for p in adapter.parameters())
    print(f"{name}: unet {parameters} parameters ({len(state)} state tensors, {len(pe_unet)} pos_embed.pe buffers), "
          f"adapter {adapter_parameters} parameters ({len(adapter_weights)} tensors, {len(pe_adapter)} pos_embed.pe buffers)")
    print(f"{name}: mid_block is {type(unet.mid_block).__name__}")
    print(f"{name}: unet.config:")
    for k, v in unet.config.items():
        print(f"    {k}: {v!r}")

    generator = torch.Generator().manual_seed(seed)
    io = {}
    for suffix, shape, timesteps in io_cases:
        sample = torch.randn(shape, generator=generator)
        text = torch.randn((shape[0], 5, 16), generator=generator)
        timesteps = torch.tensor(timesteps)
        with torch.no_grad():
            out = motion_forward(unet, sample, timesteps, text)
        assert out.shape == sample.shape
        io[f"sample_{suffix}"] = sample
        io[f"encoder_hidden_states_{suffix}"] = text
        io[f"timesteps_{suffix}"] = timesteps
        io[f"output_{suffix}"] = out.contiguous()
    save_file(io, os.path.join(folder, "io.safetensors"))
    print(f"{name}: output max |x| {max_output(io)}")

    # The saved folder reloads in diffusers and gives the same output.
    reloaded = UNetMotionModel.from_pretrained(unet_folder).eval()
    with torch.no_grad():
        again = motion_forward(reloaded, io["sample_f3"], io["timesteps_f3"], io["encoder_hidden_states_f3"])
    difference = (again - io["output_f3"]).abs().max().item()
    assert difference <= 1e-6, f"reloaded unet differs by {difference}"
    # AnimateDiff-style splitting: the motion modules saved from the U-Net are the adapter we saved.
    with tempfile.TemporaryDirectory() as tmp:
        unet.save_motion_modules(tmp)
        split = MotionAdapter.from_pretrained(tmp).state_dict()
    assert set(split) == set(adapter_weights), "split adapter keys differ"
    for k, v in adapter_weights.items():
        assert torch.equal(split[k], v), k
    print(f"{name}: from_pretrained reload max |diff| {difference}; save_motion_modules matches motion_adapter/")

    motion_gradient_fixture(unet, folder, gradient_batch, seed + 3)
    return unet


def motion_gradient_fixture(model, folder, batch, seed):
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn((batch, 4, 3, 8, 8), generator=generator).requires_grad_(True)
    text = torch.randn((batch, 5, 16), generator=generator).requires_grad_(True)  # per clip: the leaf
    timesteps = torch.tensor([57.0, 905.0][:batch])
    cotangent = torch.randn((batch, 4, 3, 8, 8), generator=generator)
    model.zero_grad()
    out = motion_forward(model, sample, timesteps, text)
    (out * cotangent).sum().backward()
    grads = {"sample": sample.detach(), "encoder_hidden_states": text.detach(), "timesteps": timesteps,
             "cotangent": cotangent, "grad.sample": sample.grad, "grad.encoder_hidden_states": text.grad}
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        grads["grad." + name] = parameter.grad
    save_file({k: v.contiguous() for k, v in grads.items()}, os.path.join(folder, "gradients.safetensors"))
    model.zero_grad(set_to_none=True)
    print(f"{os.path.basename(folder)} gradients: {len(grads) - 4} tensors")


def animatediff_fixture(image_unet):
    adapter = build_adapter(
        seed=21,
        motion_layers_per_block=1,
        motion_num_attention_heads=2,
        motion_max_seq_length=8,
        use_motion_mid_block=True,
    )
    unet = motion_fixture(
        "animatediff",
        image_unet,
        adapter,
        io_cases=(
            ("f3", (2, 4, 3, 8, 8), [10.0, 731.0]),
            ("f5", (1, 4, 5, 8, 8), [250.0]),
            ("f1", (2, 4, 1, 8, 8), [10.0, 731.0]),
            ("odd", (1, 4, 2, 7, 5), [400.0]),
        ),
        gradient_batch=2,
        seed=22,
    )
    assert isinstance(unet.mid_block, UNetMidBlockCrossAttnMotion), type(unet.mid_block)


def animatediff_two_layers_fixture():
    image_unet = build_unet2d(layers_per_block=2, seed=31)
    folder = os.path.join(ROOT, "animatediff_two_layers")
    count = save_model(image_unet, os.path.join(folder, "image_unet"))
    print(f"animatediff_two_layers/image_unet: {count} parameters")
    adapter = build_adapter(
        seed=41,
        motion_layers_per_block=2,
        motion_num_attention_heads=4,
        motion_max_seq_length=16,
        use_motion_mid_block=False,
    )
    unet = motion_fixture(
        "animatediff_two_layers",
        image_unet,
        adapter,
        io_cases=(
            ("f3", (2, 4, 3, 8, 8), [10.0, 731.0]),
            ("f6", (1, 4, 6, 8, 8), [400.0]),
        ),
        gradient_batch=1,
        seed=42,
    )
    assert type(unet.mid_block) is UNetMidBlock2DCrossAttn, type(unet.mid_block)


if __name__ == "__main__":
    torch.set_num_threads(1)
    image_unet = unet2d_fixture()
    animatediff_fixture(image_unet)
    animatediff_two_layers_fixture()
