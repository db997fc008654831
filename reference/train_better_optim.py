"""train_better_optim.py — chapter 10's golden files for the optimisers and the learning-rate schedules.

Called by ch10_train_better.py (`/usr/bin/python3 reference/make_golden.py --chapter 10`). Writes, into
reference/golden/ch10/:

  optim_p0 (N,), optim_grads (STEPS, N)       random parameters of an odd size N and a new gradient every step
  optim_lr_sgd, optim_lr_adam (STEPS,)        a learning rate that changes every step (float32 values)
  optim_<case>_p, _m [, _v] (STEPS, N)        torch.optim's parameters and state after every step, for
                                              the CASES below (m: SGD's momentum_buffer / Adam's exp_avg,
                                              v: Adam's exp_avg_sq)
  schedule_step, schedule_cosine, schedule_onecycle (TOTAL_STEPS,)
                                              the learning rate of every step of a run of TOTAL_STEPS steps,
                                              STEPS_PER_EPOCH a epoch, from torch.optim.lr_scheduler

The optimisers run in float32 (they are what the C code reproduces, operation for operation: single-tensor
code, foreach=False); an element update has no long sum, so float32 is the reference itself. The learning
rates are float32 numbers given to torch as Python floats through param_groups[0]['lr'], so that torch and the
C code, which takes the rate as a float, compute with the same number. The hyper-parameters are torch's
Python floats; tests/test_optim.cu uses the same values (in double) and must be changed with CASES.
"""
import numpy as np
import torch

N = 1031
STEPS = 7

# name -> (optimiser, hyper-parameters); the same table is in chapters/10-train-better/tests/test_optim.cu.
CASES = {
    "sgd": ("sgd", dict(momentum=0.9, weight_decay=0.0)),
    "sgd_wd": ("sgd", dict(momentum=0.9, weight_decay=1e-3)),
    "adam": ("adam", dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
    "adam_wd": ("adam", dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)),
    "adamw": ("adamw", dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
}

TOTAL_STEPS = 157
STEPS_PER_EPOCH = 23
BASE_LR = 0.1
STEP_EPOCHS = 3  # StepLR: times GAMMA every STEP_EPOCHS epochs
GAMMA = 0.1


def optimiser_states(kind, hyper, p0, grads, lrs):
    """Run torch.optim step by step; returns (params, m, v) after every step, each (STEPS, N)."""
    param = torch.nn.Parameter(torch.tensor(p0))
    if kind == "sgd":
        opt = torch.optim.SGD([param], lr=float(lrs[0]), foreach=False, **hyper)
    elif kind == "adam":
        opt = torch.optim.Adam([param], lr=float(lrs[0]), foreach=False, **hyper)
    else:
        opt = torch.optim.AdamW([param], lr=float(lrs[0]), foreach=False, **hyper)
    ps, ms, vs = [], [], []
    for step in range(STEPS):
        opt.param_groups[0]["lr"] = float(lrs[step])
        param.grad = torch.tensor(grads[step])
        opt.step()
        state = opt.state[param]
        ps.append(param.detach().numpy().copy())
        if kind == "sgd":
            ms.append(state["momentum_buffer"].numpy().copy())
        else:
            ms.append(state["exp_avg"].numpy().copy())
            vs.append(state["exp_avg_sq"].numpy().copy())
    return np.stack(ps), np.stack(ms), (np.stack(vs) if vs else None)


def schedule_rates(make_scheduler, per_epoch):
    """The learning rate of every step 0..TOTAL_STEPS-1 (the rate the step's update uses). The scheduler is
    stepped after every step's update, or (per_epoch) after the last step of every epoch."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=BASE_LR)
    scheduler = make_scheduler(opt)
    rates = []
    for step in range(TOTAL_STEPS):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradient: changes nothing, but keeps the scheduler's order-of-calls check quiet
        if not per_epoch or (step + 1) % STEPS_PER_EPOCH == 0:
            scheduler.step()
    return np.array(rates, dtype=np.float64).astype(np.float32)


def generate(writer):
    rng = np.random.default_rng(1010)
    p0 = rng.standard_normal(N).astype(np.float32)
    grads = rng.standard_normal((STEPS, N)).astype(np.float32)
    # Rates that change every step (up and down), rounded to float32 once.
    lr_sgd = (0.05 * rng.uniform(0.5, 1.5, STEPS)).astype(np.float32)
    lr_adam = (1e-2 * rng.uniform(0.5, 1.5, STEPS)).astype(np.float32)
    writer.save("optim_p0", p0)
    writer.save("optim_grads", grads)
    writer.save("optim_lr_sgd", lr_sgd)
    writer.save("optim_lr_adam", lr_adam)
    for name, (kind, hyper) in CASES.items():
        lrs = lr_sgd if kind == "sgd" else lr_adam
        ps, ms, vs = optimiser_states(kind, hyper, p0, grads, lrs)
        writer.save(f"optim_{name}_p", ps)
        writer.save(f"optim_{name}_m", ms)
        if vs is not None:
            writer.save(f"optim_{name}_v", vs)

    lr_scheduler = torch.optim.lr_scheduler
    writer.save("schedule_step",
                schedule_rates(lambda o: lr_scheduler.StepLR(o, step_size=STEP_EPOCHS, gamma=GAMMA), True))
    writer.save("schedule_cosine",
                schedule_rates(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=TOTAL_STEPS, eta_min=0.0), False))
    writer.save("schedule_onecycle", schedule_rates(
        lambda o: lr_scheduler.OneCycleLR(o, max_lr=BASE_LR, total_steps=TOTAL_STEPS, pct_start=0.3,
                                          anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4,
                                          cycle_momentum=False, three_phase=False), False))
