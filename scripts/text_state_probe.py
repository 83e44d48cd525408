"""What a base model's text encoder passes to the U-Net: for one caption and the same caption with one
word swapped (shape, object colour, size, background colour), how much each of the first 14 output
states changes, relative to its norm. The U-Net cross-attends to all of them; the states after EOS are
most of them, so a word whose swap barely moves those states is readable at its own position only.

Not part of the project or CI: it needs torch and transformers (pip install).

    python3 scripts/text_state_probe.py MODEL_DIR
"""
import torch, sys
from transformers import CLIPTextModel, CLIPTokenizer
M = sys.argv[1]
te = CLIPTextModel.from_pretrained(M, subfolder='text_encoder', torch_dtype=torch.float32).eval()
tok = CLIPTokenizer.from_pretrained(M, subfolder='tokenizer')
def states(caption):
    ids = tok([caption], padding='max_length', max_length=tok.model_max_length, truncation=True, return_tensors='pt').input_ids
    with torch.no_grad():
        return te(ids)[0][0]
base = states("a large red star on a white background")
print('position  ' + ' '.join(f'{i:4d}' for i in range(14)))
for name, caption in [('shape', "a large red circle on a white background"), ('colour', "a large blue star on a white background"),
                      ('size', "a small red star on a white background"), ('bg', "a large red star on a black background")]:
    change = (states(caption) - base).norm(dim=-1) / base.norm(dim=-1)
    print(f'{name:9s} ' + ' '.join(f'{v:4.2f}' for v in change[:14].tolist()))
