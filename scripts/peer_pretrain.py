"""The peer of `customize pretrain`'s stage 2 for a learning-speed check: trains MODEL_DIR's text encoder
and U-Net configs from scratch with diffusers and transformers on world images (images only, 8 per
step), on MODEL_DIR's autoencoder (posterior means), v-prediction on its scheduler, AdamW 3e-4 with
200 warm-up steps and a cosine to a tenth, gradient clipping at 1, EMA 0.999 with warm-up, 10% of
captions dropped. Writes a copy of MODEL_DIR with the EMA text encoder and U-Net, for
scripts/caption_sensitivity.py and `customize eval base`.

Not part of the project or CI: it needs torch, diffusers and transformers (pip install), and a
world folder WORLD_DIR from `customize world --out WORLD_DIR --images 4000 --clips 0 --split train --seed 11`.

    python3 scripts/peer_pretrain.py MODEL_DIR WORLD_DIR OUT_DIR STEPS [LR] [THREADS]
"""
import torch, json, sys, random, shutil, os, math, time, numpy as np
from PIL import Image
from diffusers import UNet3DConditionModel, AutoencoderKL, DDPMScheduler
from transformers import CLIPTextModel, CLIPTextConfig, CLIPTokenizer
if len(sys.argv) < 5: sys.exit(__doc__)
M, WORLD, OUT, STEPS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
LR = float(sys.argv[5]) if len(sys.argv) > 5 else 3e-4
torch.set_num_threads(int(sys.argv[6]) if len(sys.argv) > 6 else 1); torch.manual_seed(0); random.seed(0)
vae = AutoencoderKL.from_pretrained(M, subfolder='vae', torch_dtype=torch.float32).eval()
tok = CLIPTokenizer.from_pretrained(M, subfolder='tokenizer')
sch = DDPMScheduler.from_pretrained(M, subfolder='scheduler')
unet = UNet3DConditionModel.from_config(UNet3DConditionModel.load_config(M, subfolder='unet'))
te = CLIPTextModel(CLIPTextConfig.from_pretrained(M, subfolder='text_encoder'))
rows = [json.loads(l) for l in open(os.path.join(WORLD, 'captions.jsonl'))]
x = torch.stack([torch.from_numpy(np.array(Image.open(os.path.join(WORLD, r['file'])).convert('RGB'))).permute(2, 0, 1).float() / 127.5 - 1 for r in rows])
with torch.no_grad():
    lat = torch.cat([vae.encode(x[i:i + 256]).latent_dist.mean for i in range(0, len(x), 256)]) * vae.config.scaling_factor
caps = [r['caption'] for r in rows]
params = list(unet.parameters()) + list(te.parameters())
opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.01)
ema = [p.detach().clone() for p in params]
def factor(s):  # linear warm-up over 200 steps, then cosine to 0.1 of LR (customize's cosine with min_learning_rate)
    if s < 200: return (s + 1) / 200
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 200) / max(1, STEPS - 200)))
sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
t0 = time.time()
for step in range(1, STEPS + 1):
    idx = random.sample(range(len(rows)), 8)
    x0 = lat[idx].unsqueeze(2)
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
shutil.copytree(M, OUT)
unet.save_pretrained(os.path.join(OUT, 'unet')); te.save_pretrained(os.path.join(OUT, 'text_encoder'))
print('saved', OUT)
