#!/usr/bin/env python3
"""PEFT cross-check fixture for the Adapters target.

Loads the tiny U-Net fixture (Tests/Fixtures/unet3d, written by fixtures_unet_vae.py), adds a PEFT
LoRA (`peft.inject_adapter_in_model(LoraConfig(...), unet)`; diffusers' UNet3DConditionModel has no
`add_adapter`) on linear layers, 3x3 / 1x1 / strided
convolutions and a temporal Conv3d, with one module at another rank and one at another alpha,
randomises the factors (PEFT starts B at zero, which would hide errors), saves it with
`TextToVideoSDPipeline.save_lora_weights` (PEFT keys `unet.<path>.lora_A.weight` plus diffusers'
`lora_adapter_metadata`), and records the U-Net output with the LoRA active on the unet3d fixture's
3-frame input. Writes, in Tests/Fixtures/lora:
  peft_lora.safetensors     the LoRA as diffusers saves it (F32)
  peft_lora_io.safetensors  output_f3: the U-Net output with the LoRA at scale 1

Run by hand from the repository root:  python3 Tests/Fixtures/fixtures_lora.py
Needs torch, diffusers (0.42.1), peft, safetensors.
"""
import os

import torch
from diffusers import TextToVideoSDPipeline, UNet3DConditionModel
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.abspath(__file__))

TARGETS = [
    "conv_in",                                                    # Conv2d 3x3, padding 1
    "down_blocks.0.resnets.0.conv1",                              # Conv2d 3x3
    "down_blocks.0.downsamplers.0.conv",                          # Conv2d 3x3, stride 2
    "down_blocks.0.attentions.0.proj_in",                         # Conv2d 1x1
    "down_blocks.0.temp_convs.0.conv1.2",                         # Conv3d (3, 1, 1)
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",  # cross-attention key: input 16 (text)
    "mid_block.attentions.0.transformer_blocks.0.ff.net.2",
    "transformer_in.transformer_blocks.0.attn1.to_out.0",
    "up_blocks.1.temp_attentions.1.transformer_blocks.0.ff.net.0.proj",
]


def main():
    unet = UNet3DConditionModel.from_pretrained(os.path.join(ROOT, "unet3d")).eval()
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=TARGETS,
        rank_pattern={"^conv_in": 2},
        alpha_pattern={"^mid_block.attentions.0.transformer_blocks.0.ff.net.2": 3},
        init_lora_weights="gaussian",
    )
    unet = inject_adapter_in_model(config, unet)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "lora_" in name:
                parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))

    # PEFT's state-dict keys without the adapter name, as get_peft_model_state_dict gives them.
    layers = {k.replace(".default", ""): v.detach().clone() for k, v in unet.state_dict().items() if "lora_" in k}
    metadata = {k: (sorted(v) if isinstance(v, set) else v) for k, v in
                {"r": config.r, "lora_alpha": config.lora_alpha, "target_modules": TARGETS,
                 "rank_pattern": config.rank_pattern, "alpha_pattern": config.alpha_pattern,
                 "use_rslora": False, "init_lora_weights": "gaussian"}.items()}
    folder = os.path.join(ROOT, "lora")
    os.makedirs(folder, exist_ok=True)
    TextToVideoSDPipeline.save_lora_weights(folder, unet_lora_layers=layers, weight_name="peft_lora.safetensors",
                                            unet_lora_adapter_metadata=metadata)

    io = load_file(os.path.join(ROOT, "unet3d", "io.safetensors"))
    with torch.no_grad():
        output = unet(io["sample_f3"], io["timesteps_f3"], encoder_hidden_states=io["encoder_hidden_states_f3"]).sample
        for module in unet.modules():
            if isinstance(module, BaseTunerLayer):
                module.enable_adapters(False)
        base = unet(io["sample_f3"], io["timesteps_f3"], encoder_hidden_states=io["encoder_hidden_states_f3"]).sample
    difference = (output - base).abs().max().item()
    assert difference > 1e-2, f"the LoRA barely changes the output ({difference})"
    save_file({"output_f3": output.contiguous()}, os.path.join(folder, "peft_lora_io.safetensors"))
    keys = load_file(os.path.join(folder, "peft_lora.safetensors"))
    print(f"{len(keys)} LoRA tensors; output changed by up to {difference:.4f}; max |output| {output.abs().max().item():.4f}")


if __name__ == "__main__":
    main()
