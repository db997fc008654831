#!/usr/bin/env python3
"""pytorch_train.py — chapter 10's PyTorch side of mnist_train's recipe: the course's network trained in PyTorch
on the CPU with the same flags as mnist_train (--augment, --optimizer, --lr-schedule, --dropout1/2,
--weight-decay), so that augment_table.py can put both in one table.

    /usr/bin/python3 chapters/10-train-better/bench/pytorch_train.py --augment affine --epochs 10 --seed 1 \\
        --threads 2 --summary-json torch.json
    # a smoke test (seconds):
    /usr/bin/python3 chapters/10-train-better/bench/pytorch_train.py --augment elastic --epochs 1 \\
        --train-limit 500 --test-limit 500

The recipe is chapter 03's reference run (chapters/03-cnn-cpu/bench/pytorch_train.py: its IDX reader, MNIST
normalisation 0.1307 / 0.3081 and SGD epoch — a fresh torch.randperm order every epoch, batches of --batch, the
last one partial — imported, not copied; the network is chapters/03-cnn-cpu/bench/cnn_bench.py's Net) with:
  --augment none|affine|elastic  torchvision transforms on the CPU, drawn anew for every image in every epoch,
                                 on the [0, 1] image before the normalisation:
                                 affine:  RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1),
                                          shear=10, bilinear, fill 0) (shear=10: along x only, -10..10 degrees)
                                 elastic: ElasticTransform(alpha=68.0, sigma=4.0) (bilinear, fill 0): Simard's
                                          alpha 34 pixels, mnist_train's --augment elastic; torchvision's alpha
                                          moves pixels by alpha / 2 (chapter 10's augment.h says why)
                                 (with a fill, torchvision also darkens the pixels next to the border, which
                                 mnist_train does not: the digits stay clear of the border, so it hardly matters)
  --optimizer sgd|adam|adamw     torch.optim.SGD(momentum=--momentum), Adam, AdamW (betas 0.9, 0.999, eps 1e-8);
                                 --weight-decay (default 0, also for AdamW, as mnist_train): SGD and Adam add
                                 it to the gradient, AdamW decays decoupled
  --lr-schedule constant|step|cosine|onecycle
                                 step:     StepLR(step_size=3, gamma=0.1), stepped every epoch
                                 cosine:   CosineAnnealingLR(T_max=total steps), stepped every batch
                                 onecycle: OneCycleLR(max_lr=--lr, total_steps, pct_start=0.3,
                                           cycle_momentum=False), stepped every batch
The test accuracy is measured after every epoch (eval mode, batches of 1000); train_seconds counts the epochs'
training, augmentation included, evaluation excluded (as mnist_train's does). Needs PyTorch and torchvision
(Debian: python3-torch python3-torchvision): run it with /usr/bin/python3.
"""
import argparse
import importlib.util
import math
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ left in the bench folders
import bench_common  # noqa: E402  (this folder's shared helpers: the paths, the atomic JSON write)

try:
    import torch
    import torch.nn.functional as F
    import torchvision
    import torchvision.transforms as T
except ImportError as e:
    sys.exit(f"error: {e.name} is not importable by this Python (Debian: apt-get install python3-torch "
             "python3-torchvision; run the script with /usr/bin/python3)")

CH03_BENCH = os.path.join(bench_common.REPO_ROOT, "chapters", "03-cnn-cpu", "bench")

# Chapter 03's pytorch_train.py has this file's name, so it is loaded from its path (a plain import would find
# this file again); its own `from cnn_bench import Net` needs its folder on the module path.
sys.path.insert(0, CH03_BENCH)
_spec = importlib.util.spec_from_file_location("ch03_pytorch_train", os.path.join(CH03_BENCH, "pytorch_train.py"))
ch03 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ch03)

MEAN, STD = 0.1307, 0.3081  # chapter 03's load_split normalises with these: x = (pixel / 255 - MEAN) / STD

AUGMENTS = {
    "none": None,
    "affine": T.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10,
                             interpolation=T.InterpolationMode.BILINEAR, fill=0),
    # torchvision's displacement is alpha / size in grid_sample's [-1, 1] coordinates (2 per image width), so
    # alpha=68 moves pixels by up to 34 * (the smoothed noise), Simard's alpha 34 that mnist_train uses.
    "elastic": T.ElasticTransform(alpha=68.0, sigma=4.0, interpolation=T.InterpolationMode.BILINEAR, fill=0),
}


def augmented(x_train, transform):
    """A new normalised copy of the training images (N, 1, 28, 28), each transformed with its own random draw.
    The transforms work on [0, 1] images (fill 0 is black there), so the normalisation is undone first."""
    pixels = x_train * STD + MEAN                                    # (N, 1, 28, 28) in [0, 1]
    # One thread: a 28x28 image is far too small to share, and the threads' hand-offs would cost more than the
    # work (ElasticTransform's blur ran 10x slower with 2 threads than with 1 on a busy 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = torch.stack([transform(image) for image in pixels])  # one call per image: its own parameters
    finally:
        torch.set_num_threads(threads)
    return (out - MEAN) / STD


class ScheduledOptimizer:
    """The optimizer as chapter 03's sgd_epoch sees it (zero_grad, step), with a per-batch learning-rate schedule
    moved on after every update, as torch's examples do: optimizer.step(); scheduler.step()."""

    def __init__(self, optimizer, batch_scheduler):
        self.optimizer, self.batch_scheduler = optimizer, batch_scheduler

    def zero_grad(self):
        self.optimizer.zero_grad()

    def step(self):
        self.optimizer.step()
        if self.batch_scheduler is not None:
            self.batch_scheduler.step()


def make_optimizer(name, parameters, lr, momentum, weight_decay):
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)  # not torch's default 0.01


def make_schedule(name, optimizer, lr, total_steps):
    """(per-epoch scheduler or None, per-batch scheduler or None) for the schedule `name`."""
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.1), None
    if name == "cosine":
        return None, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name == "onecycle":
        return None, torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps,
                                                         pct_start=0.3, cycle_momentum=False)
    return None, None


def evaluate(net, x_test, y_test):
    """(accuracy as a fraction, mean cross-entropy) on the test set, in eval mode, batches of 1000."""
    net.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for first in range(0, len(x_test), 1000):
            logits = net(x_test[first:first + 1000])
            labels = y_test[first:first + 1000]
            correct += (logits.argmax(1) == labels).sum().item()
            loss += F.cross_entropy(logits, labels, reduction="sum").item()
    return correct / len(x_test), loss / len(x_test)


def load(folder, prefix, limit):
    """Chapter 03's load_split (normalised images (N, 1, 28, 28), labels (N,)), the first `limit` if set."""
    x, y = ch03.load_split(folder, prefix)
    if limit:
        x, y = x[:limit], y[:limit]
    return x, y


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=bench_common.BUNDLED_DATA,
                        help="folder with the MNIST IDX files (.gz or plain) (default: the bundled data/, %(default)s)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=64, help="images per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.01,
                        help="learning rate (onecycle: its peak, max_lr) (default: %(default)s)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD's momentum (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="see above (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1,
                        help="torch.manual_seed: weights, order, augmentation (default: %(default)s)")
    parser.add_argument("--train-limit", type=int, default=0,
                        help="the first N training images only (0: all) (default: %(default)s)")
    parser.add_argument("--test-limit", type=int, default=0,
                        help="the first N test images only (0: all) (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default: %(default)s)")
    parser.add_argument("--augment", choices=sorted(AUGMENTS), default="none", help="(default: %(default)s)")
    parser.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="sgd", help="(default: %(default)s)")
    parser.add_argument("--lr-schedule", choices=["constant", "step", "cosine", "onecycle"], default="constant",
                        help="(default: %(default)s)")
    parser.add_argument("--dropout1", type=float, default=0.25, help="dropout after the pooling (default: %(default)s)")
    parser.add_argument("--dropout2", type=float, default=0.5, help="dropout after fc1 (default: %(default)s)")
    parser.add_argument("--summary-json", help="write a JSON summary here (test_accuracy a fraction)")
    args = parser.parse_args()
    for name in ("epochs", "batch", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("dropout1", "dropout2"):
        if not 0 <= getattr(args, name) < 1:
            parser.error(f"--{name} must be in [0, 1)")
    if not os.path.isdir(args.data):
        parser.error(f"--data {args.data}: no such folder")
    return args


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    x_train, y_train = load(args.data, "train", args.train_limit)   # (N, 1, 28, 28), (N,)
    x_test, y_test = load(args.data, "t10k", args.test_limit)
    net = ch03.Net()
    net.dropout1.p, net.dropout2.p = args.dropout1, args.dropout2
    steps_per_epoch = math.ceil(len(x_train) / args.batch)
    optimizer = make_optimizer(args.optimizer, net.parameters(), args.lr, args.momentum, args.weight_decay)
    epoch_scheduler, batch_scheduler = make_schedule(args.lr_schedule, optimizer, args.lr,
                                                     args.epochs * steps_per_epoch)
    stepper = ScheduledOptimizer(optimizer, batch_scheduler)
    transform = AUGMENTS[args.augment]

    train_seconds, augment_seconds, accuracies, losses = [], [], [], []
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        x_epoch = x_train if transform is None else augmented(x_train, transform)
        augment_seconds.append(time.perf_counter() - started)
        net.train()
        ch03.sgd_epoch(net, stepper, x_epoch, y_train, args.batch)
        if epoch_scheduler is not None:
            epoch_scheduler.step()
        train_seconds.append(time.perf_counter() - started)
        accuracy, loss = evaluate(net, x_test, y_test)
        accuracies.append(accuracy)
        losses.append(loss)
        print(f"epoch {epoch}/{args.epochs}: test accuracy {100 * accuracy:.2f} %, test loss {loss:.4f}, "
              f"{train_seconds[-1]:.1f} s training ({augment_seconds[-1]:.1f} s of it augmenting)", flush=True)

    print(f"PyTorch {torch.__version__}, torchvision {torchvision.__version__}, seed {args.seed}, "
          f"{len(x_train)} training images, {args.augment}, {args.optimizer}, {args.lr_schedule}")
    if args.summary_json:
        bench_common.write_json(args.summary_json, {
            "program": "pytorch_train.py", "torch": torch.__version__, "torchvision": torchvision.__version__,
            "data": os.path.abspath(args.data), "batch": args.batch, "lr": args.lr, "momentum": args.momentum,
            "weight_decay": args.weight_decay, "optimizer": args.optimizer,
            "lr_schedule": args.lr_schedule, "augment": args.augment, "dropout1": args.dropout1,
            "dropout2": args.dropout2, "seed": args.seed, "threads": args.threads, "epochs": args.epochs,
            "train_samples": len(x_train), "test_samples": len(x_test),
            "epoch_train_seconds": train_seconds, "epoch_augment_seconds": augment_seconds,
            "epoch_test_accuracy": accuracies, "epoch_test_loss": losses,
            "test_accuracy": accuracies[-1], "test_loss": losses[-1], "train_seconds": sum(train_seconds),
        })
        print(f"summary: {args.summary_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
