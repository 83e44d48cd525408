#!/usr/bin/env python3
"""Parity fixture for Models' CLIPTextModel.

Builds a tiny transformers CLIPTextModel (hidden 32, 2 layers, 4 heads, quick_gelu, 16 positions)
over the vocabulary of the fixture tokenizer (Tests/Fixtures/tokenizer/), randomises every
parameter with a seeded generator (transformers' init is std 0.02, which would let LayerNorm hide
errors), runs it in float32 and saves into Tests/Fixtures/clip_text/:
  config.json        the config as save_pretrained writes it
  model.safetensors  the weights as save_pretrained writes them (transformers 5: no `text_model.` prefix)
  io.safetensors     input_ids (as F32), last_hidden_state, pooler_output

Run by hand from the repository root:  python3 Tests/Fixtures/fixtures_clip.py
Needs torch, transformers (4.x or 5.x), safetensors.
"""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

ROOT = os.path.dirname(os.path.abspath(__file__))


def randomise(model, seed):
    """Every parameter drawn again: matrices ~ N(0, 1/fan_in), norm scales ~ 1 + N(0, 0.1²), biases ~ N(0, 0.1²)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
            if "embedding" in name:
                parameter.copy_(noise)
            elif parameter.ndim >= 2:
                parameter.copy_(noise / parameter[0].numel() ** 0.5)
            elif name.endswith("weight"):
                parameter.copy_(1 + 0.1 * noise)
            else:
                parameter.copy_(0.1 * noise)


def main():
    torch.manual_seed(0)
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(ROOT, "tokenizer"))
    vocabulary = json.load(open(os.path.join(ROOT, "tokenizer", "vocab.json")))
    config = CLIPTextConfig(
        vocab_size=len(vocabulary),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=16,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=32,
    )
    model = CLIPTextModel(config).eval()
    randomise(model, seed=11)
    folder = os.path.join(ROOT, "clip_text")
    model.save_pretrained(folder)

    prompts = ["a photo of a cat", "", "a cat's toy on the beach, oil painting"]
    ids = tokenizer(prompts, padding="max_length", max_length=16, truncation=True, return_tensors="pt").input_ids
    generator = torch.Generator().manual_seed(12)
    shorter = torch.randint(0, len(vocabulary), (2, 9), generator=generator)
    io = {}
    with torch.no_grad():
        for name, batch in (("padded", ids), ("random", shorter)):
            out = model(batch)
            io[f"input_ids_{name}"] = batch.to(torch.float32)
            io[f"last_hidden_state_{name}"] = out.last_hidden_state.contiguous()
            io[f"pooler_output_{name}"] = out.pooler_output.contiguous()
    save_file(io, os.path.join(folder, "io.safetensors"))
    print("clip_text:", sum(p.numel() for p in model.parameters()), "parameters;",
          "max |last_hidden_state|", io["last_hidden_state_padded"].abs().max().item())


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
