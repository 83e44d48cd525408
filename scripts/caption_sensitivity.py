"""Which caption words a base model's U-Net uses: its v-prediction loss on one-object world images
at fixed noise, with the right caption against the same caption with the shape, colour or size word
swapped, or empty. A model that draws a word's meaning loses more when that word is wrong.

Not part of the project or CI: it needs torch, diffusers and transformers (pip install). The images
come from a world folder WORLD_DIR, e.g. `customize world --out WORLD_DIR --images 4000 --clips 0 --split train --seed 11`.

    python3 scripts/caption_sensitivity.py MODEL_DIR WORLD_DIR [N_IMAGES]
"""
import torch, json, os, sys, random, numpy as np
from PIL import Image
from diffusers import UNet3DConditionModel, AutoencoderKL, DDPMScheduler
from transformers import CLIPTextModel, CLIPTokenizer
torch.set_num_threads(1); torch.manual_seed(0); random.seed(0)
if len(sys.argv) < 3: sys.exit(__doc__)
M, WORLD = sys.argv[1], sys.argv[2]; N = int(sys.argv[3]) if len(sys.argv) > 3 else 48
unet = UNet3DConditionModel.from_pretrained(M, subfolder='unet', torch_dtype=torch.float32).eval()
vae = AutoencoderKL.from_pretrained(M, subfolder='vae', torch_dtype=torch.float32).eval()
te = CLIPTextModel.from_pretrained(M, subfolder='text_encoder', torch_dtype=torch.float32).eval()
tok = CLIPTokenizer.from_pretrained(M, subfolder='tokenizer')
sch = DDPMScheduler.from_pretrained(M, subfolder='scheduler')
SH = ['circle','square','triangle','star','ring','cross','diamond','heart','hexagon','crescent']
SI = ['small', 'medium', 'large']
CO = ['red','green','blue','yellow','orange','purple','pink','cyan','white','gray','brown','black']
rows = [json.loads(l) for l in open(os.path.join(WORLD, 'captions.jsonl'))]
rows = [r for r in rows if len(r['scene']['objects']) == 1][:N]
x = torch.stack([torch.from_numpy(np.array(Image.open(os.path.join(WORLD, r['file'])).convert('RGB'))).permute(2, 0, 1).float() / 127.5 - 1 for r in rows])
def swap(c, words, w):
    return c.replace(' ' + w + ' ', ' ' + random.choice([v for v in words if v != w]) + ' ', 1)
caps = {'right': [r['caption'] for r in rows],
        'shape swapped': [swap(r['caption'], SH, r['scene']['objects'][0]['kind']) for r in rows],
        'colour swapped': [swap(r['caption'], CO, r['scene']['objects'][0]['colour']) for r in rows],
        'size swapped': [swap(' ' + r['caption'], SI, r['scene']['objects'][0]['size']).strip() for r in rows],
        'empty': ['' for r in rows]}
with torch.no_grad():
    lat = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
    lat = lat.unsqueeze(2)  # [B, C, 1, h, w]
    for t in [200, 400, 600, 800]:
        ts = torch.full((len(rows),), t, dtype=torch.long)
        noise = torch.randn(lat.shape, generator=torch.Generator().manual_seed(t))
        noisy = sch.add_noise(lat, noise, ts); target = sch.get_velocity(lat, noise, ts)
        out = {}
        for k, c in caps.items():
            ids = tok(c, padding='max_length', max_length=tok.model_max_length, truncation=True, return_tensors='pt').input_ids
            h = te(ids)[0]
            pred = unet(noisy, ts, encoder_hidden_states=h).sample
            out[k] = ((pred - target) ** 2).mean().item()
        print(f't={t}', '  '.join(f'{k} {v:.4f} ({v / out["right"]:.3f})' for k, v in out.items()), flush=True)
