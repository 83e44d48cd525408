"""The peer of `customize pretrain`'s text-encoder + U-Net stage for a learning-speed check, with
diffusers and transformers: images only (one frame), 8 per step, on MODEL_DIR's autoencoder,
v-prediction on its scheduler, AdamW LR (default 3e-4) with 200 warm-up steps and a cosine to a
tenth, weight decay 0.01, gradient clipping at 1, EMA 0.999 with warm-up, 10% of captions dropped.

Two layouts (ARCH):
- unet3d (the default): a fresh UNet3DConditionModel from MODEL_DIR/unet/config.json and a fresh
  text encoder from MODEL_DIR/text_encoder's config; writes a copy of MODEL_DIR with the EMA text
  encoder and U-Net.
- animatediff: the image stage of `customize pretrain --architecture animatediff --init-from
  MODEL_DIR`: a fresh UNet2DConditionModel from IMAGE_UNET_CONFIG (a config.json, e.g. the
  "image_unet" section of `customize pretrain --architecture animatediff --print-config` saved
  alone), MODEL_DIR's trained text encoder, trained further; writes a StableDiffusionPipeline
  folder (MODEL_DIR's autoencoder, tokenizer, scheduler; the EMA text encoder and image U-Net),
  which `customize eval caption --model OUT_DIR` reads.

Latents are sampled from the autoencoder's posterior each step (as customize does) and the
images cycle through WORLD_DIR in a seeded order. Not part of the project or CI: it needs torch,
diffusers and transformers (pip install), and a world folder WORLD_DIR from
`customize world --out WORLD_DIR --images 16000 --split train --seed 11` (add --core for the
core world).

    python3 scripts/peer_pretrain.py MODEL_DIR WORLD_DIR OUT_DIR STEPS [LR] [THREADS]
    ARCH=animatediff IMAGE_UNET_CONFIG=image_unet.json python3 scripts/peer_pretrain.py ...
"""
import torch, json, sys, random, shutil, os, math, time, numpy as np
from PIL import Image
from diffusers import UNet3DConditionModel, UNet2DConditionModel, AutoencoderKL, DDPMScheduler
from transformers import CLIPTextModel, CLIPTextConfig, CLIPTokenizer
if len(sys.argv) < 5: sys.exit(__doc__)
M, WORLD, OUT, STEPS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
LR = float(sys.argv[5]) if len(sys.argv) > 5 else 3e-4
ARCH = os.environ.get('ARCH', 'unet3d')
if ARCH not in ('unet3d', 'animatediff'): sys.exit(f'ARCH must be unet3d or animatediff, got {ARCH!r}')
torch.set_num_threads(int(sys.argv[6]) if len(sys.argv) > 6 else 1); torch.manual_seed(0); random.seed(0)
vae = AutoencoderKL.from_pretrained(M, subfolder='vae', torch_dtype=torch.float32).eval()
tok = CLIPTokenizer.from_pretrained(M, subfolder='tokenizer')
sch = DDPMScheduler.from_pretrained(M, subfolder='scheduler')
if ARCH == 'unet3d':
    unet = UNet3DConditionModel.from_config(UNet3DConditionModel.load_config(M, subfolder='unet'))
    te = CLIPTextModel(CLIPTextConfig.from_pretrained(M, subfolder='text_encoder'))
else:
    config_path = os.environ.get('IMAGE_UNET_CONFIG')
    if not config_path: sys.exit('ARCH=animatediff needs IMAGE_UNET_CONFIG=<an image U-Net config.json>')
    unet = UNet2DConditionModel.from_config(json.load(open(config_path)))
    te = CLIPTextModel.from_pretrained(M, subfolder='text_encoder', torch_dtype=torch.float32)
rows = [json.loads(l) for l in open(os.path.join(WORLD, 'captions.jsonl')) if l.strip()]
rows = [r for r in rows if r['file'].endswith('.png')]
x = torch.stack([torch.from_numpy(np.array(Image.open(os.path.join(WORLD, r['file'])).convert('RGB'))).permute(2, 0, 1).float() / 127.5 - 1 for r in rows])
with torch.no_grad():
    dist = [vae.encode(x[i:i + 256]).latent_dist for i in range(0, len(x), 256)]
    mean = torch.cat([d.mean for d in dist]); std = torch.cat([d.std for d in dist])
caps = [r['caption'] for r in rows]
print(f'{len(rows)} images from {WORLD}; {sum(p.numel() for p in unet.parameters())} U-Net parameters', flush=True)
params = list(unet.parameters()) + list(te.parameters())
opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.01)
ema = [p.detach().clone() for p in params]
def factor(s):  # linear warm-up over 200 steps, then cosine to 0.1 of LR (customize's cosine with min_learning_rate)
    if s < 200: return (s + 1) / 200
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 200) / max(1, STEPS - 200)))
sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
order = []
t0 = time.time()
for step in range(1, STEPS + 1):
    while len(order) < 8: order += random.sample(range(len(rows)), len(rows))
    idx, order = order[:8], order[8:]
    x0 = (mean[idx] + std[idx] * torch.randn_like(mean[idx])) * vae.config.scaling_factor
    if ARCH == 'unet3d': x0 = x0.unsqueeze(2)
    c = [caps[i] if random.random() >= 0.1 else '' for i in idx]
    ids = tok(c, padding='max_length', max_length=tok.model_max_length, truncation=True, return_tensors='pt').input_ids
    noise = torch.randn_like(x0); t = torch.randint(0, sch.config.num_train_timesteps, (8,))
    noisy = sch.add_noise(x0, noise, t); target = sch.get_velocity(x0, noise, t)
    pred = unet(noisy, t, encoder_hidden_states=te(ids)[0]).sample
    loss = torch.nn.functional.mse_loss(pred, target)
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); sched.step()
    with torch.no_grad():
        d = min(0.999, (1 + step) / (10 + step))
        for e, p in zip(ema, params): e.mul_(d).add_(p.detach(), alpha=1 - d)
    if step % 50 == 0: print(f'step {step} loss {loss.item():.4f} {(time.time() - t0) / step:.2f} s/step', flush=True)
with torch.no_grad():
    for e, p in zip(ema, params): p.copy_(e)
if os.path.exists(OUT): shutil.rmtree(OUT)
if ARCH == 'unet3d':
    shutil.copytree(M, OUT)
else:
    os.makedirs(OUT)
    for part in ('vae', 'tokenizer', 'scheduler'): shutil.copytree(os.path.join(M, part), os.path.join(OUT, part))
    json.dump({'_class_name': 'StableDiffusionPipeline', '_diffusers_version': '0.42.1',
               'feature_extractor': [None, None], 'image_encoder': [None, None], 'requires_safety_checker': False,
               'safety_checker': [None, None], 'scheduler': ['diffusers', 'DDIMScheduler'],
               'text_encoder': ['transformers', 'CLIPTextModel'], 'tokenizer': ['transformers', 'CLIPTokenizer'],
               'unet': ['diffusers', 'UNet2DConditionModel'], 'vae': ['diffusers', 'AutoencoderKL']},
              open(os.path.join(OUT, 'model_index.json'), 'w'), indent=2)
unet.save_pretrained(os.path.join(OUT, 'unet')); te.save_pretrained(os.path.join(OUT, 'text_encoder'))
print(f'saved {OUT} after {time.time() - t0:.0f} s', flush=True)
