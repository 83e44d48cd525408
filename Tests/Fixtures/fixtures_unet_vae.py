#!/usr/bin/env python3
"""Parity fixtures for Models' UNet3DConditionModel and AutoencoderKL.

Builds tiny diffusers models, randomises every parameter with a seeded generator (diffusers
zero-initialises some layers, e.g. TemporalConvLayer.conv4, which would hide errors), runs them in
float32 and saves, per model folder:
  config.json                       the diffusers config (save_config)
  diffusion_pytorch_model.safetensors  the weights (F32)
  io.safetensors                    inputs and reference outputs

Run by hand from the repository root:  python3 Tests/Fixtures/fixtures_unet_vae.py
Needs torch, diffusers, safetensors.
"""
import json
import os

import torch
from diffusers import AutoencoderKL, UNet3DConditionModel
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.abspath(__file__))


def randomise(model, seed):
    """Every parameter drawn again: weights ~ N(0, 1/fan_in), norm scales ~ 1 + N(0, 0.1²), biases ~ N(0, 0.1²)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
            if parameter.ndim >= 2:
                fan_in = parameter[0].numel()
                parameter.copy_(noise / fan_in ** 0.5)
            elif name.endswith("weight"):
                parameter.copy_(1 + 0.1 * noise)
            else:
                parameter.copy_(0.1 * noise)


def save_model(model, folder):
    os.makedirs(folder, exist_ok=True)
    model.save_config(folder)
    weights = {k: v.detach().contiguous().to(torch.float32) for k, v in model.state_dict().items()}
    save_file(weights, os.path.join(folder, "diffusion_pytorch_model.safetensors"))
    return sum(v.numel() for v in weights.values())


def unet_fixture():
    torch.manual_seed(0)
    model = UNet3DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=16,
        attention_head_dim=8,
    ).eval()
    randomise(model, seed=1)
    folder = os.path.join(ROOT, "unet3d")
    count = save_model(model, folder)
    generator = torch.Generator().manual_seed(2)
    io = {}
    for frames in (3, 1):
        sample = torch.randn((2, 4, frames, 8, 8), generator=generator)
        text = torch.randn((2, 5, 16), generator=generator)
        timesteps = torch.tensor([10.0, 731.0])
        with torch.no_grad():
            out = model(sample, timesteps, encoder_hidden_states=text).sample
        io[f"sample_f{frames}"] = sample
        io[f"encoder_hidden_states_f{frames}"] = text
        io[f"timesteps_f{frames}"] = timesteps
        io[f"output_f{frames}"] = out.contiguous()
    # Sizes that are not multiples of 2^upsamplers: diffusers forwards explicit upsample sizes.
    sample = torch.randn((1, 4, 2, 7, 5), generator=generator)
    text = torch.randn((1, 5, 16), generator=generator)
    timesteps = torch.tensor([400.0])
    with torch.no_grad():
        out = model(sample, timesteps, encoder_hidden_states=text).sample
    io["sample_odd"] = sample
    io["encoder_hidden_states_odd"] = text
    io["timesteps_odd"] = timesteps
    io["output_odd"] = out.contiguous()
    save_file(io, os.path.join(folder, "io.safetensors"))
    print(f"unet3d: {count} parameters, output max |x| {max(v.abs().max().item() for k, v in io.items() if k.startswith('output'))}")
    unet_gradient_fixture(model, folder)


def unet_gradient_fixture(model, folder):
    """Backward parity: the gradients of sum(output * cotangent) with respect to the sample, the text
    states and every parameter, for a 3-frame batch (temporal layers included)."""
    generator = torch.Generator().manual_seed(5)
    sample = torch.randn((2, 4, 3, 8, 8), generator=generator).requires_grad_(True)
    text = torch.randn((2, 5, 16), generator=generator).requires_grad_(True)
    timesteps = torch.tensor([57.0, 905.0])
    cotangent = torch.randn((2, 4, 3, 8, 8), generator=generator)
    model.zero_grad()
    out = model(sample, timesteps, encoder_hidden_states=text).sample
    (out * cotangent).sum().backward()
    grads = {"sample": sample.detach(), "encoder_hidden_states": text.detach(), "timesteps": timesteps,
             "cotangent": cotangent, "grad.sample": sample.grad, "grad.encoder_hidden_states": text.grad}
    for name, parameter in model.named_parameters():
        grads["grad." + name] = parameter.grad.contiguous()
    save_file({k: v.contiguous() for k, v in grads.items()}, os.path.join(folder, "gradients.safetensors"))
    print(f"unet3d gradients: {len(grads) - 4} tensors")


def vae_fixture():
    torch.manual_seed(0)
    model = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=16,
    ).eval()
    randomise(model, seed=3)
    folder = os.path.join(ROOT, "vae")
    count = save_model(model, folder)
    generator = torch.Generator().manual_seed(4)
    images = torch.rand((2, 3, 16, 16), generator=generator) * 2 - 1
    latents = torch.randn((2, 4, 8, 8), generator=generator)
    with torch.no_grad():
        posterior = model.encode(images).latent_dist
        decoded = model.decode(latents).sample
    io = {
        "images": images,
        "mean": posterior.mean.contiguous(),
        "logvar": posterior.logvar.contiguous(),
        "latents": latents,
        "decoded": decoded.contiguous(),
    }
    save_file(io, os.path.join(folder, "io.safetensors"))
    print(f"vae: {count} parameters, |mean| max {io['mean'].abs().max().item()}, |decoded| max {io['decoded'].abs().max().item()}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    unet_fixture()
    vae_fixture()
