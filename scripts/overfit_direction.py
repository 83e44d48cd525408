"""Can an AnimateDiff model learn to move an object the way its caption says? A diagnostic of
issue 24's motion stage with diffusers, outside the project and CI (needs torch, diffusers,
transformers, pillow and the peer's core-world renderer, ../shared/peer/core_world.py).

MODEL_DIR is an AnimateDiffPipeline folder (e.g. `customize pretrain`'s model/). The script trains
its whole U-Net and text encoder (MODE all; MODE unet freezes the text encoder, MODE motion
trains the motion modules alone) with
v-prediction, AdamW LR (default 3e-4), batch 4, on a fixed set of tied-start clips, then samples
(DDIM 20 steps, trailing spacing, guidance 4, seed 1) "a large red circle moving right|left
quickly on a black background" from two seeds and the same for three objects the set never shows
(a blue square on white, a yellow star on green, a pink heart on gray), each right prompt from the
same starting noise as its left twin, and prints each object's centre x per frame (`tracks`): a
right prompt should climb, a left one fall; twins that take the same path show the word unread.
STEPS 0 only samples.

The clips: by default 8, one red circle (4 moving right from the left edge, 4 moving left from the
right edge, at 4 heights), a set a model can memorise; POOL=N instead draws N clips of the whole
core world with tied starts (every shape, colour, background and motion), and NARROW=K with POOL
trains on the 8 red-circle clips for the first K steps and on the pool after them (a curriculum:
is a direction learnt on one object kept when the data widens?). Every EVERY steps
(default 50) it prints the loss on the 8 clips at t = 999/950/900/700/500 with the right caption
and its rise with the opposite direction word; RENDER_EVERY=K also samples every K steps.

    python3 scripts/overfit_direction.py PEER_DIR MODEL_DIR OUT_DIR STEPS [LR] [MODE]
"""
import json, os, sys, time, random
import numpy as np, torch
if len(sys.argv) < 5: sys.exit(__doc__)
PEER, MODEL, OUT, STEPS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
LR = float(sys.argv[5]) if len(sys.argv) > 5 else 3e-4
MODE = sys.argv[6] if len(sys.argv) > 6 else "all"
if MODE not in ("all", "unet", "motion"): sys.exit(f"MODE is all, unet or motion, got {MODE!r}")
os.environ["TIED_START"] = "1"  # read by core_world at import
sys.path.insert(0, PEER)
import core_world as W
from diffusers import AutoencoderKL, DDPMScheduler, DDIMScheduler, UNetMotionModel
from transformers import CLIPTextModel, CLIPTokenizer
from PIL import Image

torch.set_num_threads(int(os.environ.get("THREADS", "2"))); torch.manual_seed(0); rng = random.Random(0)
os.makedirs(OUT, exist_ok=True)
vae = AutoencoderKL.from_pretrained(MODEL, subfolder="vae").float().eval(); SF = vae.config.scaling_factor
tok = CLIPTokenizer.from_pretrained(MODEL, subfolder="tokenizer")
te = CLIPTextModel.from_pretrained(MODEL, subfolder="text_encoder").float()
unet = UNetMotionModel.from_pretrained(MODEL, subfolder="unet").float()
sched = DDPMScheduler.from_pretrained(MODEL, subfolder="scheduler")
if MODE == "motion":
    unet.freeze_unet2d_params(); te.requires_grad_(False)
elif MODE == "unet":  # the whole U-Net, the text encoder frozen
    te.requires_grad_(False)
params = [p for p in unet.parameters() if p.requires_grad] + [p for p in te.parameters() if p.requires_grad]
print(f"{sched.config.prediction_type}; trainable {sum(p.numel() for p in params) / 1e6:.2f} M", flush=True)

def encode(pixels, count):  # uint8 [count*8, 64, 64, 3] -> latents [count, 4, 8, 16, 16]
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad(): lat = torch.cat([vae.encode(x[i:i + 256]).latent_dist.mean for i in range(0, len(x), 256)]) * SF
    return lat.reshape(count, 8, 4, 16, 16).permute(0, 2, 1, 3, 4).contiguous()

def red_circle(motion, y):
    r = W.SIZES["large"] * 64 / 2
    scene = dict(shape="circle", colour="red", bg="black", size="large", motion=motion, speed=3.0,
                 x=r + 1 if motion == "right" else 64 - r - 1, y=y)
    return W.render(scene, 8), f"a large red circle moving {motion} quickly on a black background"

fixed = [red_circle(m, y) for m in ("right", "left") for y in (20, 28, 36, 44)]
caps = [c for _, c in fixed]; lat = encode(np.concatenate([p for p, _ in fixed]), 8)
POOL = int(os.environ.get("POOL", "0"))
if POOL:
    drawn = [W.sample(rng, 8) for _ in range(POOL)]
    train_caps = [c.replace(" on a", " quickly on a") if " moving " in c else c for _, c in drawn]
    train_lat = encode(np.concatenate([W.render(s, 8) for s, _ in drawn]), POOL)
else:
    train_caps, train_lat = caps, lat

# Objects the 8 clips never show, to see whether a learnt direction carries over to them.
OTHERS = [("blue square", "white"), ("yellow star", "green"), ("pink heart", "gray")]

def ids(c): return tok(c, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
def predict(z, c, t):
    return unet(z, t, encoder_hidden_states=te(ids(c))[0].repeat_interleave(z.shape[2], dim=0)).sample
def opposite(c): return c.replace("right", "@").replace("left", "right").replace("@", "left")
noise = torch.randn(lat.shape, generator=torch.Generator().manual_seed(5))

def probe():
    out = {}
    with torch.no_grad():
        for t in (999, 950, 900, 700, 500):
            tt = torch.full((8,), t); z = sched.add_noise(lat, noise, tt); target = sched.get_velocity(lat, noise, tt)
            ok = ((predict(z, caps, tt) - target) ** 2).mean().item()
            wrong = ((predict(z, [opposite(c) for c in caps], tt) - target) ** 2).mean().item()
            out[t] = f"{ok:.4f}, opposite {100 * (wrong / ok - 1):+.1f}%"
    return out

def centre_x(frames):  # the object's mean column per frame: pixels far from the corner's colour (None when gone)
    corner = frames[:, :2, :2].reshape(len(frames), -1, 3).mean(1)[:, None, None, :]
    drawn = np.abs(frames.astype(float) - corner).sum(-1) > 120
    return [round(float(np.nonzero(f)[1].mean()), 1) if f.sum() > 20 else None for f in drawn]

def render(tag):
    ddim = DDIMScheduler.from_config(sched.config, timestep_spacing="trailing"); ddim.set_timesteps(20)
    # Each right prompt shares its starting noise with its left twin, so the two tracks differ only
    # by what the model reads from the direction word.
    objects = [("red circle", "black")] * 2 + OTHERS
    prompts = [f"a large {o} moving {m} quickly on a {b} background" for o, b in objects for m in ("right", "left")]
    n = len(prompts); z = torch.randn((n // 2, 4, 8, 16, 16), generator=torch.Generator().manual_seed(1)).repeat_interleave(2, dim=0)
    with torch.no_grad():
        for s in ddim.timesteps:
            tt = torch.full((n,), int(s)); vc = predict(z, prompts, tt); vu = predict(z, [""] * n, tt)
            z = ddim.step(vu + 4 * (vc - vu), s, z).prev_sample
        img = vae.decode(z.permute(0, 2, 1, 3, 4).reshape(-1, 4, 16, 16) / SF).sample.clamp(-1, 1)
    img = ((img + 1) * 127.5).byte().permute(0, 2, 3, 1).numpy().reshape(n, 8, 64, 64, 3)
    Image.fromarray(np.concatenate([np.concatenate(list(r), 1) for r in img], 0)).save(os.path.join(OUT, f"render-{tag}.png"))
    return {f"{' '.join(p.split()[2:4])} {p.split(' moving ')[1].split()[0]} {i}": centre_x(r) for i, (p, r) in enumerate(zip(prompts, img))}

print(json.dumps({"step": 0, "probe": probe()}), flush=True)
EVERY, RENDER_EVERY = int(os.environ.get("EVERY", "50")), int(os.environ.get("RENDER_EVERY", "0"))
NARROW = int(os.environ.get("NARROW", "0"))
if NARROW and not POOL: sys.exit("NARROW needs POOL: the steps after it train on the pool")
opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.01); started = time.time(); losses = []
for step in range(1, STEPS + 1):
    pool_caps, pool_lat = (caps, lat) if step <= NARROW else (train_caps, train_lat)
    idx = rng.sample(range(len(pool_caps)), 4); x0 = pool_lat[idx]
    n = torch.randn_like(x0); t = torch.randint(0, 1000, (4,))
    loss = torch.nn.functional.mse_loss(predict(sched.add_noise(x0, n, t), [pool_caps[i] for i in idx], t), sched.get_velocity(x0, n, t))
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); losses.append(loss.item())
    if step % EVERY == 0:
        print(json.dumps({"step": step, "s": round(time.time() - started), "loss": round(float(np.mean(losses[-EVERY:])), 4), "probe": probe()}), flush=True)
    if RENDER_EVERY and step % RENDER_EVERY == 0 and step != STEPS:
        print(json.dumps({"step": step, "tracks": render(f"{MODE}-{step}")}), flush=True)
print(json.dumps({"step": STEPS, "tracks": render(f"{MODE}-{STEPS}")}), flush=True)
