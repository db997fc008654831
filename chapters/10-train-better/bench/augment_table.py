#!/usr/bin/env python3
"""augment_table.py — chapter 10's measurement of what data augmentation buys: mnist_train and PyTorch (the
same recipe, bench/pytorch_train.py) trained on the bundled 10,000 MNIST digits with and without augmentation,
over several seeds, tested on the official 10,000 test images; one Markdown table of every run, then the
medians per augmentation and side.

    /usr/bin/python3 chapters/10-train-better/bench/augment_table.py --json augment_table.json
    /usr/bin/python3 chapters/10-train-better/bench/augment_table.py --augments none affine elastic \\
        --seeds 1 2 3 4 5 --epochs 15 --lr 0.05 --lr-schedule onecycle --json onecycle.json
    # a smoke test (a minute): a few hundred images, one epoch
    /usr/bin/python3 chapters/10-train-better/bench/augment_table.py --train-limit 300 --test-limit 300 \\
        --epochs 1 --seeds 1 --json /tmp/smoke.json

The default recipe (both sides): 15 epochs, batch 64, SGD lr 0.01 momentum 0.9, a cosine schedule (chapter
07's recipe with more epochs and a decaying rate). Every (seed, augmentation) trains both sides one after the
other, the side that goes first alternating, so that both see the same machine load; mnist_train runs with
--device cpu (or --device) and both with --threads threads. The recipe flags (--epochs ... --dropout2) go to
both sides unchanged; mnist_train gets chapter 10's flags (--augment, --optimizer, --lr-schedule,
--weight-decay, --dropout1/2) only where they differ from its defaults, so the command stays the chapter 07
one where it can. What the augmentations and schedules are: bench/pytorch_train.py --help.

Resumable: the results file (--json) keeps every finished run; started again with the same recipe it skips
the (seed, augmentation, side) runs it holds, so an interrupted measurement continues, and more --seeds or
--augments can be added later. A file of another recipe is refused (nothing overwritten). Seconds are each
side's training time (augmentation included, the evaluation after every epoch excluded), from its JSON
summary. Needs PyTorch and torchvision (Debian: python3-torch python3-torchvision): run it with
/usr/bin/python3.
"""
import argparse
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ left in the bench folder
import bench_common as bc  # noqa: E402  (this folder's shared helpers)

SIDES = ("mnist_train", "pytorch")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, help="results file: written after every run, read to resume")
    parser.add_argument("--trainer", default=bc.DEFAULT_TRAINER, help="the mnist_train program (default: %(default)s)")
    parser.add_argument("--data", default=bc.BUNDLED_DATA,
                        help="MNIST IDX folder (default: the bundled data/, %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3],
                        help="seeds of the runs (default: %(default)s)")
    parser.add_argument("--augments", nargs="+", choices=["none", "affine", "elastic"], default=["none", "affine"],
                        help="augmentations (default: %(default)s)")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES),
                        help="which programs (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="mnist_train's --device (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="both sides' threads (default: %(default)s)")
    recipe = parser.add_argument_group("the recipe (both sides)")
    recipe.add_argument("--epochs", type=int, default=15, help="epochs (default: %(default)s)")
    recipe.add_argument("--batch", type=int, default=64, help="images per step (default: %(default)s)")
    recipe.add_argument("--lr", type=float, default=0.01,
                        help="learning rate (onecycle: its peak) (default: %(default)s)")
    recipe.add_argument("--momentum", type=float, default=0.9, help="SGD's momentum (default: %(default)s)")
    recipe.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="sgd", help="(default: %(default)s)")
    recipe.add_argument("--weight-decay", type=float, default=None,
                        help="not given: 0 (also for AdamW); given: passed to both sides")
    recipe.add_argument("--lr-schedule", choices=["constant", "step", "cosine", "onecycle"], default="cosine",
                        help="(default: %(default)s)")
    recipe.add_argument("--dropout1", type=float, default=None, help="not given: the network's 0.25")
    recipe.add_argument("--dropout2", type=float, default=None, help="not given: the network's 0.5")
    recipe.add_argument("--train-limit", type=int, default=0,
                        help="the first N training images only (0: all; smoke tests) (default: %(default)s)")
    recipe.add_argument("--test-limit", type=int, default=0,
                        help="the first N test images only (0: all; smoke tests) (default: %(default)s)")
    args = parser.parse_args()
    return args


def recipe_of(args):
    """What must be the same for all runs of one results file (the seeds and augmentations may grow)."""
    keys = ("epochs", "batch", "lr", "momentum", "optimizer", "weight_decay", "lr_schedule", "dropout1",
            "dropout2", "train_limit", "test_limit", "threads", "device")
    recipe = {key: getattr(args, key) for key in keys}
    recipe["data"] = os.path.abspath(args.data)
    return recipe


def shared_flags(args, seed):
    """The flags both programs take with the same meaning."""
    flags = ["--data", args.data, "--threads", str(args.threads), "--epochs", str(args.epochs),
             "--batch", str(args.batch), "--lr", repr(args.lr), "--momentum", repr(args.momentum), "--seed", str(seed)]
    if args.train_limit:
        flags += ["--train-limit", str(args.train_limit)]
    if args.test_limit:
        flags += ["--test-limit", str(args.test_limit)]
    for name in ("weight_decay", "dropout1", "dropout2"):
        if getattr(args, name) is not None:
            flags += ["--" + name.replace("_", "-"), repr(getattr(args, name))]
    return flags


def chapter10_flags(args, augment):
    """mnist_train's chapter 10 flags, only those that differ from its defaults."""
    flags = []
    for flag, value, default in (("--augment", augment, "none"), ("--optimizer", args.optimizer, "sgd"),
                                 ("--lr-schedule", args.lr_schedule, "constant")):
        if value != default:
            flags += [flag, value]
    return flags


def command_for(args, side, seed, augment):
    if side == "mnist_train":
        return [args.trainer, "--device", args.device] + shared_flags(args, seed) + chapter10_flags(args, augment)
    return [sys.executable, bc.PYTORCH_TRAIN] + shared_flags(args, seed) + [
        "--augment", augment, "--optimizer", args.optimizer, "--lr-schedule", args.lr_schedule]


def find(runs, seed, augment, side):
    return next((r for r in runs if (r["seed"], r["augment"], r["side"]) == (seed, augment, side)), None)


def report(results, args):
    runs = results["runs"]
    seeds = sorted({r["seed"] for r in runs})
    augments = [a for a in ("none", "affine", "elastic") if any(r["augment"] == a for r in runs)]

    def cell(run, key):
        if run is None:
            return "—"
        return bc.percent(run["test_accuracy"]) if key == "accuracy" else f"{run['train_seconds']:.1f}"

    rows = []
    for seed in seeds:
        for augment in augments:
            c, t = find(runs, seed, augment, "mnist_train"), find(runs, seed, augment, "pytorch")
            if c or t:
                rows.append([str(seed), augment, cell(c, "accuracy"), cell(t, "accuracy"), cell(c, "s"), cell(t, "s")])
    print()
    print(bc.markdown_table(["seed", "augment", "mnist_train", "PyTorch", "mnist_train s", "PyTorch s"], rows, 2))

    rows = []
    for augment in augments:
        row = [augment]
        for key in ("test_accuracy", "train_seconds"):
            for side in SIDES:
                values = [r[key] for r in runs if r["augment"] == augment and r["side"] == side]
                if not values:
                    row.append("—")
                elif key == "test_accuracy":
                    row.append(f"{bc.percent(bc.median(values))} ({len(values)}: {100 * min(values):.2f}–"
                               f"{100 * max(values):.2f})")
                else:
                    row.append(f"{bc.median(values):.1f}")
        rows.append(row)
    print()
    print("medians over the seeds (in brackets: the number of runs, the lowest and highest accuracy)")
    print()
    print(bc.markdown_table(["augment", "mnist_train", "PyTorch", "mnist_train s", "PyTorch s"], rows))
    recipe = results["recipe"]
    print()
    print(f"recipe: {recipe['epochs']} epochs, batch {recipe['batch']}, {recipe['optimizer']} lr {recipe['lr']} "
          f"(momentum {recipe['momentum']}, weight decay {recipe['weight_decay'] or 0}), "
          f"{recipe['lr_schedule']} schedule, {recipe['train_limit'] or 'all'} training images of "
          f"{recipe['data']}, {recipe['test_limit'] or 'all'} test images; --device {recipe['device']}, "
          f"{recipe['threads']} threads; seconds: training time of the whole run")
    if "torch" in results:
        print(f"PyTorch {results['torch']}, torchvision {results['torchvision']}")
    bc.print_sessions(results, args.json)


def main():
    args = parse_args()
    bc.check_data(args.data, "--data")
    if "mnist_train" in args.sides:
        used = {word for augment in args.augments for word in command_for(args, "mnist_train", 1, augment)}
        bc.check_trainer(args.trainer, sorted(word for word in used if word.startswith("--")) + ["--summary-json"])
    if "pytorch" in args.sides:
        bc.check_pytorch()
    results = bc.load_results(args.json, recipe_of(args))
    runs = results["runs"]

    todo = [(seed, augment) for seed in args.seeds for augment in args.augments]
    for index, (seed, augment) in enumerate(todo):
        order = list(args.sides) if index % 2 == 0 else list(reversed(args.sides))
        for side in order:
            if find(runs, seed, augment, side):
                print(f"seed {seed}, {augment}, {side}: in {args.json} already, skipped")
                continue
            print(f"seed {seed}, {augment}, {side} ...", end="", flush=True)
            command = command_for(args, side, seed, augment)
            label = f"seed {seed}, {augment}, {side}"
            summary, wall, shown = bc.run_training(command, label)
            bc.check_summary(summary, {"augment": augment, "optimizer": args.optimizer,
                                       "lr_schedule": args.lr_schedule, "epochs": args.epochs}, label)
            run = {"seed": seed, "augment": augment, "side": side, "test_accuracy": summary["test_accuracy"],
                   "train_seconds": summary["train_seconds"], "wall_seconds": wall, "command": shown,
                   "epoch_test_accuracy": summary.get("epoch_test_accuracy"), "finished": bc.utc_now()}
            runs.append(run)
            if side == "pytorch":
                results["torch"], results["torchvision"] = summary["torch"], summary["torchvision"]
            bc.write_json(args.json, results)
            print(f" {bc.percent(run['test_accuracy'])}, {run['train_seconds']:.1f} s training, {wall:.1f} s in all",
                  flush=True)
    report(results, args)
    return 0


if __name__ == "__main__":
    bc.run_main(main, "the --json file")
