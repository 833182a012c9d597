"""Record of the one-off script behind 2026-11-28_h200_train_profile.txt (run: python3 this.py cuda 20)."""
import json, sys, time
import numpy as np, torch
dev = sys.argv[1] if len(sys.argv) > 1 else "cuda"
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 40
from dforce_plan.cli import make_dataset
from dforce_plan.model import ModelSpec, make_windows, batch_stream, PlanningLoss
from dforce_plan.presets import model_preset
from dforce_train import TrainConfig, Trainer, prefetch
T0 = time.perf_counter()
data = make_dataset("medium", 200_000, 0, noisy=True, progress=False)
out = {"data_s": round(time.perf_counter() - T0, 1)}
def sync():
    if dev == "cuda": torch.cuda.synchronize()
import os
CONFIGS = [("paper", 1024, "bf16"), ("paper", 1024, "fp32"), ("paper", 4096, "bf16"), ("tiny", 1024, "bf16")] if dev == "cuda" else [("tiny", 64, "bf16")]
for size, bs, prec in CONFIGS:
    spec = ModelSpec(maze="medium", kind="df", n_tokens=60, **model_preset(size))
    w = make_windows(data, spec)
    it = batch_stream(w, bs, 0)
    t = time.perf_counter(); [next(it) for _ in range(5)]; collate = (time.perf_counter() - t) / 5
    cfg = TrainConfig(lr=5e-4, max_steps=10**6, ema_decay=0.999, ckpt_every=None, log_every=10**6, device=dev,
                      progress=False, precision=prec)
    tr = Trainer(spec.build(), PlanningLoss(spec), cfg)
    batches = prefetch(batch_stream(w, bs, 0))
    for _ in range(5): tr._train_step(next(batches)); tr.step += 1
    sync(); t = time.perf_counter()
    for _ in range(steps):
        tr._train_step(next(batches)); tr.step += 1
    sync(); step_s = (time.perf_counter() - t) / steps
    # same batch repeated: no data loading at all
    b = next(batches); sync(); t = time.perf_counter()
    for _ in range(steps): tr._train_step(b)
    sync(); nodata = (time.perf_counter() - t) / steps
    row = {"size": size, "batch": bs, "prec": prec, "collate_ms": round(1e3 * collate, 1),
           "step_ms": round(1e3 * step_s, 1), "step_ms_same_batch": round(1e3 * nodata, 1)}
    if (size == "paper" and bs == 1024 and prec == "bf16") or dev == "cpu":
        from torch.profiler import profile, ProfilerActivity
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev == "cuda" else [])
        with profile(activities=acts) as prof:
            for _ in range(5): tr._train_step(b)
            sync()
        ka = prof.key_averages()
        key = "self_device_time_total" if dev == "cuda" else "self_cpu_time_total"
        top = sorted(ka, key=lambda e: getattr(e, key, 0), reverse=True)[:12]
        row["top"] = [(e.key[:40], e.count // 5, round(getattr(e, key, 0) / 5e3, 2)) for e in top]
        row["device_ms_per_step"] = round(sum(getattr(e, "self_device_time_total", 0) for e in ka) / 5e3, 1)
        row["launches_per_step"] = sum(e.count for e in ka if e.key.startswith("cudaLaunchKernel")) // 5
    print(json.dumps(row), flush=True)
    tr.close()
# planning: one replan, 100 envs, df and df_mcg, paper size (random weights)
from dforce_plan.planner import Planner, PlannerConfig
from dforce_plan.presets import planner_preset
spec = ModelSpec(maze="medium", kind="df", n_tokens=60, **model_preset("paper" if dev == "cuda" else "tiny"))
model = spec.build().to(dev).eval()
for p in model.parameters(): p.requires_grad_(False)
obs = np.tile(np.array([[1.0, 1.0, 0.0, 0.0]]), (100, 1)); goals = np.tile(np.array([[6.0, 6.0]]), (100, 1))
for method in ("df", "df_mcg"):
    pl = Planner(model, spec, PlannerConfig(method=method, **planner_preset(method, "medium")))
    pl.plan(obs[:2], goals[:2], 600)
    sync(); t = time.perf_counter(); pl.plan(obs, goals, 600); sync()
    print(json.dumps({"plan": method, "envs": 100, "ms": round(1e3 * (time.perf_counter() - t), 1)}), flush=True)
print(json.dumps({"total_s": round(time.perf_counter() - T0, 1), **out}))
