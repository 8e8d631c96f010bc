#!/usr/bin/env python3
"""Generate PyTorch fixtures for the Swift `Optimizers` target.

Run by hand (the output is committed):

    pip install torch numpy
    python3 Scripts/make_optimizer_fixtures.py

Writes Tests/OptimizersTests/Fixtures/optimizers.json. Everything is deterministic (numpy seeded
generator, float32 values written as the exact decimal of the float32 number, so Swift reads back the
very same bits).

Layout
------
{
  "chilladam": [case, ...],      # the reference ChillAdam (albertmoe_ref.py, class ChillAdam)
  "adamw":     [case, ...],      # torch.optim.AdamW (foreach=False: the plain per-tensor loop)
  "sgd":       [case, ...],      # torch.optim.SGD (foreach=False)
  "clip":      [clip case, ...], # torch.nn.utils.clip_grad_norm_
  "schedules": [schedule case, ...]
}
case = {"name": str, "hyper": {...constructor arguments...},
        "shapes": [[...], ...], "initial": [[flat float32], ...],
        "steps": [{"grads": [[flat] or null, ...], "expected": [[flat params after this step], ...]}, ...]}
A null gradient means the parameter has no gradient at that step (the optimizer skips it).
clip case = {"name", "max_norm", "shapes", "grads": [[flat], ...], "total_norm", "clipped": [[flat], ...]}
schedule case = {"kind": "constant"|"linear"|"cosine", "lr", "warmup", "total", "min_lr" (or null),
                 "steps": [int], "values": [float]}  -- the schedules follow transformers'
get_constant_schedule_with_warmup / get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup
(num_cycles 0.5); a min_lr floor maps the decay factor f to min_lr + (lr - min_lr) * f, as transformers'
get_cosine_with_min_lr_schedule_with_warmup does for the cosine. They are computed here with plain math.
"""
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REF_DIR = os.environ.get("ALBERTMOE_REF", os.path.join(ROOT, "..", "shared", "reference"))
sys.path.insert(0, REF_DIR)
from albertmoe_ref import ChillAdam  # noqa: E402

OUT = os.path.join(ROOT, "Tests", "OptimizersTests", "Fixtures", "optimizers.json")
STEPS = 5

torch.manual_seed(0)
torch.set_num_threads(1)


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).to(torch.float32).numpy().tolist()]


def f32(a):
    return np.asarray(a, dtype=np.float32)


def make_params(rng, specs):
    """specs: list of (shape, scale) -> float32 arrays."""
    return [f32(rng.standard_normal(shape) * scale) for shape, scale in specs]


def make_grads(rng, specs, steps, skip=()):
    """specs: list of (shape, scale); skip: set of (step, index) with no gradient."""
    out = []
    for s in range(steps):
        row = []
        for i, (shape, scale) in enumerate(specs):
            if (s, i) in skip:
                row.append(None)
            else:
                row.append(f32(rng.standard_normal(shape) * scale))
        out.append(row)
    return out


def run_case(name, make_opt, hyper, params0, grads):
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params0]
    opt = make_opt(params)
    steps = []
    for row in grads:
        for p, g in zip(params, row):
            p.grad = None if g is None else torch.from_numpy(g.copy())
        opt.step()
        steps.append({
            "grads": [None if g is None else flat(torch.from_numpy(g)) for g in row],
            "expected": [flat(p) for p in params],
        })
    return {
        "name": name,
        "hyper": hyper,
        "shapes": [list(p.shape) for p in params0],
        "initial": [flat(torch.from_numpy(p)) for p in params0],
        "steps": steps,
    }


def chilladam_cases():
    cases = []
    rng = np.random.default_rng(1234)
    # Parameters: small norm (per-tensor lr hits max_lr), medium norm (lr = 1/||p||), huge norm (lr hits min_lr).
    pspecs = [([3, 4], 0.1), ([5], 3.0), ([2, 3], 5000.0), ([4, 2], 1.0)]
    # Gradients: ordinary, tiny norm (< eps: the clamp is active), huge norm (> 100), ordinary.
    gspecs = [([3, 4], 0.5), ([5], 1e-5), ([2, 3], 200.0), ([4, 2], 2.0)]
    for wd, name in [(0.0, "chilladam_default"), (0.01, "chilladam_wd")]:
        params0 = make_params(rng, pspecs)
        grads = make_grads(rng, gspecs, STEPS, skip={(2, 3)})
        hyper = {"min_lr": 1e-4, "max_lr": 1.0, "eps": 1e-3, "betas": [0.9, 0.999], "weight_decay": wd}
        cases.append(run_case(name, lambda ps, h=hyper: ChillAdam(ps, min_lr=h["min_lr"], max_lr=h["max_lr"],
                                                                  eps=h["eps"], betas=tuple(h["betas"]),
                                                                  weight_decay=h["weight_decay"]),
                              hyper, params0, grads))
    # Non-default hyper-parameters.
    params0 = make_params(rng, pspecs)
    grads = make_grads(rng, gspecs, STEPS)
    hyper = {"min_lr": 1e-3, "max_lr": 0.5, "eps": 1e-4, "betas": [0.8, 0.99], "weight_decay": 0.1}
    cases.append(run_case("chilladam_custom", lambda ps, h=hyper: ChillAdam(ps, min_lr=h["min_lr"], max_lr=h["max_lr"],
                                                                            eps=h["eps"], betas=tuple(h["betas"]),
                                                                            weight_decay=h["weight_decay"]),
                          hyper, params0, grads))
    return cases


def adamw_cases():
    cases = []
    rng = np.random.default_rng(99)
    pspecs = [([3, 4], 1.0), ([6], 0.5), ([2, 2, 2], 2.0)]
    gspecs = [([3, 4], 0.3), ([6], 1e-3), ([2, 2, 2], 5.0)]
    configs = [
        ("adamw_default", {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01}),
        ("adamw_custom", {"lr": 0.05, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.1}),
        ("adamw_no_decay", {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0}),
    ]
    for name, hyper in configs:
        params0 = make_params(rng, pspecs)
        grads = make_grads(rng, gspecs, STEPS, skip={(1, 1)})
        cases.append(run_case(name, lambda ps, h=hyper: torch.optim.AdamW(ps, lr=h["lr"], betas=tuple(h["betas"]),
                                                                          eps=h["eps"], weight_decay=h["weight_decay"],
                                                                          foreach=False),
                              hyper, params0, grads))
    return cases


def sgd_cases():
    cases = []
    rng = np.random.default_rng(7)
    pspecs = [([3, 4], 1.0), ([5], 0.5)]
    gspecs = [([3, 4], 0.3), ([5], 2.0)]
    configs = [
        ("sgd_plain", {"lr": 0.1, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False}),
        ("sgd_momentum", {"lr": 0.05, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False}),
        ("sgd_momentum_dampening_wd", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01,
                                       "nesterov": False}),
        ("sgd_nesterov_wd", {"lr": 0.02, "momentum": 0.8, "dampening": 0.0, "weight_decay": 0.05, "nesterov": True}),
    ]
    for name, hyper in configs:
        params0 = make_params(rng, pspecs)
        grads = make_grads(rng, gspecs, STEPS, skip={(1, 0)})
        cases.append(run_case(name, lambda ps, h=hyper: torch.optim.SGD(ps, lr=h["lr"], momentum=h["momentum"],
                                                                        dampening=h["dampening"],
                                                                        weight_decay=h["weight_decay"],
                                                                        nesterov=h["nesterov"], foreach=False),
                              hyper, params0, grads))
    return cases


def clip_cases():
    cases = []
    rng = np.random.default_rng(5)
    shapes = [[3, 4], [7], [2, 2, 3]]
    for name, scale, max_norm in [("clip_active", 1.0, 1.0), ("clip_inactive", 0.01, 5.0),
                                  ("clip_large", 300.0, 0.25)]:
        grads = [f32(rng.standard_normal(s) * scale) for s in shapes]
        params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g.copy())
        total = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=False)
        cases.append({
            "name": name,
            "max_norm": max_norm,
            "shapes": shapes,
            "grads": [flat(torch.from_numpy(g)) for g in grads],
            "total_norm": float(total),
            "clipped": [flat(p.grad) for p in params],
        })
    return cases


def schedule_factor(kind, step, warmup, total, min_rate):
    if step < warmup:
        return step / max(1, warmup)
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "linear":
        f = max(0.0, (total - step) / max(1, total - warmup))
    else:
        progress = min(progress, 1.0)  # held at the end past total (transformers' cosine would rise again)
        f = max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))
    return f * (1 - min_rate) + min_rate


def schedule_cases():
    cases = []
    configs = [
        ("constant", 3e-4, 0, 100, None),
        ("constant", 3e-4, 10, 100, None),
        ("linear", 1e-3, 10, 100, None),
        ("linear", 1e-3, 0, 50, None),
        ("linear", 5e-4, 20, 120, 5e-5),
        ("cosine", 1e-3, 10, 100, None),
        ("cosine", 2e-3, 0, 40, None),
        ("cosine", 1e-3, 25, 200, 1e-4),
    ]
    for kind, lr, warmup, total, min_lr in configs:
        steps = sorted(set([0, 1, 2, warmup // 2, max(warmup - 1, 0), warmup, warmup + 1, (warmup + total) // 2,
                            total - 1, total, total + 5]))
        min_rate = 0.0 if min_lr is None else min_lr / lr
        values = [lr * schedule_factor(kind, s, warmup, total, min_rate) for s in steps]
        cases.append({"kind": kind, "lr": lr, "warmup": warmup, "total": total, "min_lr": min_lr,
                      "steps": steps, "values": values})
    return cases


def check_transformers_if_available(cases):
    """Cross-checks the plain formulas against transformers when it happens to be installed."""
    try:
        from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                                  get_linear_schedule_with_warmup)
    except Exception:
        print("transformers not installed; schedule formulas not cross-checked (fine)")
        return
    for c in cases:
        if c["min_lr"] is not None:
            continue
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=c["lr"])
        if c["kind"] == "constant":
            sch = get_constant_schedule_with_warmup(opt, c["warmup"])
        elif c["kind"] == "linear":
            sch = get_linear_schedule_with_warmup(opt, c["warmup"], c["total"])
        else:
            sch = get_cosine_schedule_with_warmup(opt, c["warmup"], c["total"])
        for s, v in zip(c["steps"], c["values"]):
            if s > c["total"]:
                continue
            got = c["lr"] * sch.lr_lambdas[0](s)
            assert abs(got - v) <= 1e-12 * max(1.0, abs(v)), (c, s, got, v)
    print("schedules agree with transformers")


def main():
    sch = schedule_cases()
    check_transformers_if_available(sch)
    data = {
        "torch_version": torch.__version__,
        "chilladam": chilladam_cases(),
        "adamw": adamw_cases(),
        "sgd": sgd_cases(),
        "clip": clip_cases(),
        "schedules": sch,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
