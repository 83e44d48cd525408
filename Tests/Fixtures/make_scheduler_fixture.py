"""Runs diffusers' DDPM, DDIM and Euler schedulers for a few steps on a small random sample with
fixed model outputs and records every input and output into
Tests/Fixtures/schedulers/expected.json, for DiffusionTests/SchedulerFixtureTests.swift (which
never runs Python). Needs torch and diffusers. Run: python3 Tests/Fixtures/make_scheduler_fixture.py
"""
import json
import os

import diffusers
import torch
from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler

folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schedulers")
shape = (1, 2, 3, 3)


def values(tensor):
    return [float(v) for v in tensor.detach().to(torch.float32).flatten().tolist()]


cases = [
    ("ddpm linear epsilon leading", DDPMScheduler, dict(beta_schedule="linear"), 5, {}),
    ("ddpm scaled_linear v fixed_small_log trailing", DDPMScheduler,
     dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="v_prediction",
          variance_type="fixed_small_log", timestep_spacing="trailing", clip_sample=False), 4, {}),
    ("ddpm cosine sample linspace fixed_large", DDPMScheduler,
     dict(beta_schedule="squaredcos_cap_v2", prediction_type="sample", variance_type="fixed_large",
          timestep_spacing="linspace", clip_sample=True, clip_sample_range=0.5), 3, {}),
    ("ddim stable diffusion", DDIMScheduler,
     dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1,
          set_alpha_to_one=False, clip_sample=False), 5, {}),
    ("ddim cosine v trailing zero snr eta", DDIMScheduler,
     dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", timestep_spacing="trailing",
          rescale_betas_zero_snr=True, clip_sample=False), 4, {"eta": 0.5}),
    ("ddim linear sample linspace clip", DDIMScheduler,
     dict(beta_schedule="linear", prediction_type="sample", timestep_spacing="linspace", clip_sample=True), 3, {}),
    ("euler scaled_linear epsilon linspace", EulerDiscreteScheduler,
     dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012), 7, {}),
    ("euler v leading offset", EulerDiscreteScheduler,
     dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="v_prediction",
          timestep_spacing="leading", steps_offset=1), 4, {}),
    ("euler linear trailing sigma_min", EulerDiscreteScheduler,
     dict(beta_schedule="linear", timestep_spacing="trailing", final_sigmas_type="sigma_min"), 3, {}),
]

generator = torch.Generator().manual_seed(0)
records = []
for name, cls, kwargs, steps, step_kwargs in cases:
    scheduler = cls(**kwargs)
    config = json.loads(scheduler.to_json_string())
    scheduler.set_timesteps(steps)
    record = {
        "name": name,
        "config": config,
        "steps": steps,
        "eta": step_kwargs.get("eta", 0.0),
        "timesteps": [float(t) for t in scheduler.timesteps.tolist()],
        "init_noise_sigma": float(scheduler.init_noise_sigma),
        "sigmas": values(scheduler.sigmas) if hasattr(scheduler, "sigmas") else [],
        "steps_taken": [],
    }
    sample = torch.randn(shape, generator=generator) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(sample, t)
        model_output = torch.randn(shape, generator=generator)
        state = generator.get_state()
        noise = torch.randn(shape, generator=generator)
        generator.set_state(state)
        if cls is DDIMScheduler:
            output = scheduler.step(model_output, t, sample, eta=step_kwargs.get("eta", 0.0), variance_noise=noise)
        elif cls is DDPMScheduler:
            output = scheduler.step(model_output, t, sample, generator=generator)
        else:
            output = scheduler.step(model_output, t, sample)
        record["steps_taken"].append({
            "timestep": float(t),
            "sample": values(sample),
            "model_input": values(model_input),
            "model_output": values(model_output),
            "noise": values(noise),
            "prev_sample": values(output.prev_sample),
            "pred_original": values(output.pred_original_sample),
        })
        sample = output.prev_sample
    records.append(record)

schedules = []
indices = [0, 1, 2, 10, 100, 499, 500, 998, 999]
for beta_schedule in ["linear", "scaled_linear", "squaredcos_cap_v2"]:
    for rescale in [False, True]:
        scheduler = DDPMScheduler(beta_schedule=beta_schedule, beta_start=0.00085, beta_end=0.012,
                                  rescale_betas_zero_snr=rescale)
        schedules.append({
            "beta_schedule": beta_schedule, "rescale_betas_zero_snr": rescale, "indices": indices,
            "betas": [float(scheduler.betas[i]) for i in indices],
            "alphas_cumprod": [float(scheduler.alphas_cumprod[i]) for i in indices],
        })

training_shape = (3, 2, 2, 2)
scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
original = torch.randn(training_shape, generator=generator)
noise = torch.randn(training_shape, generator=generator)
timesteps = torch.tensor([0, 421, 999])
training = {
    "timesteps": timesteps.tolist(), "shape": list(training_shape),
    "original": values(original), "noise": values(noise),
    "noisy": values(scheduler.add_noise(original, noise, timesteps)),
    "velocity": values(scheduler.get_velocity(original, noise, timesteps)),
}

with open(os.path.join(folder, "expected.json"), "w") as handle:
    json.dump({"diffusers": diffusers.__version__, "torch": torch.__version__, "shape": list(shape),
               "cases": records, "schedules": schedules, "training": training}, handle)
    handle.write("\n")
print("wrote", len(records), "cases")
