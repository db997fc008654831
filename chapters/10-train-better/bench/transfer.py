#!/usr/bin/env python3
"""transfer.py — chapter 10's measurement of transfer learning from digits to clothes: mnist_train pretrained on
the bundled MNIST digits, then trained on only the first --labels (1,000) Fashion-MNIST training images and
tested on all 10,000 Fashion-MNIST test images, in three arms, over several seeds; one Markdown table (a row per
seed, then the medians) and each transfer arm's difference to training from scratch.

    /usr/bin/python3 chapters/10-train-better/bench/transfer.py --json transfer.json
    /usr/bin/python3 chapters/10-train-better/bench/transfer.py --pretrained mnist.safetensors --labels 500 \\
        --seeds 1 2 3 4 5 --json transfer500.json
    # a smoke test (a minute): a few hundred images, one epoch
    /usr/bin/python3 chapters/10-train-better/bench/transfer.py --pretrain-epochs 1 --pretrain-limit 300 \\
        --labels 300 --epochs 1 --test-limit 300 --seeds 1 --json /tmp/smoke-transfer.json

The arms (every one trains the same --epochs on the same --labels images with the same recipe and seed):
  scratch   from scratch: all four layers freshly initialised, every layer at the learning rate --lr;
  freeze    --init-from CKPT --freeze conv1,conv2: the two convolutions keep the weights and biases learnt on
            MNIST and get no update; fc1 and fc2, freshly initialised, are trained (a new classifier on top of
            the digit features);
  layer-lr  --init-from CKPT --layer-lr conv1=S,conv2=S: the convolutions start from MNIST's weights and are
            fine-tuned at S times the learning rate (S = --layer-lr-scale, 0.1), fc1 and fc2 fresh at --lr.
The pretraining, once: mnist_train --data MNIST --epochs PRETRAIN_EPOCHS --seed PRETRAIN_SEED --save CKPT on the
bundled 10,000 digits (--mnist), CKPT written next to the results file (<json>.pretrained.safetensors), unless
--pretrained gives a checkpoint to reuse. Both data sets go through the trainer's one normalisation (MNIST's
mean and deviation). Transfer from digits to clothes may well not help: the table shows what it does, with
the spread over the seeds.

Resumable: the results file (--json) keeps the pretraining and every finished run; started again with the same
recipe it skips what it holds (more --seeds can be added later). A file of another recipe or pretrained
checkpoint is refused (nothing overwritten). mnist_train runs with --device cpu (or --device) and --threads
threads; seconds are its training time (the evaluation after every epoch excluded).
"""
import argparse
import hashlib
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ left in the bench folder
import bench_common as bc  # noqa: E402  (this folder's shared helpers)

ARMS = ("scratch", "freeze", "layer-lr")
ARM_TITLES = {"scratch": "from scratch", "freeze": "frozen convs", "layer-lr": "convs at S × lr"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, help="results file: written after every run, read to resume")
    parser.add_argument("--trainer", default=bc.DEFAULT_TRAINER, help="the mnist_train program (default: %(default)s)")
    parser.add_argument("--mnist", default=bc.BUNDLED_DATA,
                        help="pretraining data (default: the bundled data/, %(default)s)")
    parser.add_argument("--fashion", default=bc.FASHION_DATA, help="Fashion-MNIST IDX folder (default: %(default)s)")
    parser.add_argument("--pretrained", help="a mnist_train checkpoint to start from (not given: pretrain one)")
    parser.add_argument("--pretrain-epochs", type=int, default=4, help="epochs on MNIST (default: %(default)s)")
    parser.add_argument("--pretrain-seed", type=int, default=1, help="the pretraining's seed (default: %(default)s)")
    parser.add_argument("--pretrain-limit", type=int, default=0,
                        help="the first N digits only (0: all; smoke tests) (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3],
                        help="seeds of the runs (default: %(default)s)")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS),
                        help="which arms (see above) (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="mnist_train's --device (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="mnist_train's --threads (default: %(default)s)")
    recipe = parser.add_argument_group("the Fashion-MNIST training (every arm)")
    recipe.add_argument("--labels", type=int, default=1000,
                        help="the first N Fashion-MNIST training images (default: %(default)s)")
    recipe.add_argument("--epochs", type=int, default=20, help="epochs (default: %(default)s)")
    recipe.add_argument("--batch", type=int, default=64, help="images per step (default: %(default)s)")
    recipe.add_argument("--lr", type=float, default=0.01, help="learning rate (default: %(default)s)")
    recipe.add_argument("--momentum", type=float, default=0.9, help="SGD's momentum (default: %(default)s)")
    recipe.add_argument("--lr-schedule", choices=["constant", "step", "cosine", "onecycle"], default="constant",
                        help="(default: %(default)s)")
    recipe.add_argument("--layer-lr-scale", type=float, default=0.1,
                        help="S of the layer-lr arm (default: %(default)s)")
    recipe.add_argument("--test-limit", type=int, default=0,
                        help="the first N test images only (0: all; smoke tests) (default: %(default)s)")
    args = parser.parse_args()
    if not 1 <= args.labels <= 60000:
        parser.error("--labels must be 1 to 60000 (Fashion-MNIST has 60,000 training images)")
    if not args.layer_lr_scale > 0:
        parser.error("--layer-lr-scale must be positive (0 would be the freeze arm)")
    return args


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recipe_of(args):
    """What must be the same for all runs of one results file (the seeds and arms may grow)."""
    keys = ("labels", "epochs", "batch", "lr", "momentum", "lr_schedule", "layer_lr_scale", "test_limit",
            "threads", "device")
    recipe = {key: getattr(args, key) for key in keys}
    recipe["fashion"] = os.path.abspath(args.fashion)
    if args.pretrained:
        recipe["pretrained_sha256"] = sha256(args.pretrained)
    else:
        recipe["pretraining"] = {"data": os.path.abspath(args.mnist), "epochs": args.pretrain_epochs,
                                 "seed": args.pretrain_seed, "limit": args.pretrain_limit}
    return recipe


def pretrain(args, results):
    """The checkpoint the transfer arms start from: --pretrained, the one this results file made, or a new one."""
    if args.pretrained:
        return args.pretrained
    checkpoint = os.path.splitext(args.json)[0] + ".pretrained.safetensors"
    done = results.get("pretraining")
    if done and os.path.isfile(checkpoint) and sha256(checkpoint) == done["sha256"]:
        print(f"pretraining: {checkpoint} (in {args.json} already)")
        return checkpoint
    command = [args.trainer, "--device", args.device, "--threads", str(args.threads), "--data", args.mnist,
               "--epochs", str(args.pretrain_epochs), "--seed", str(args.pretrain_seed), "--save", checkpoint]
    if args.pretrain_limit:
        command += ["--train-limit", str(args.pretrain_limit)]
    if args.test_limit:
        command += ["--test-limit", str(args.test_limit)]
    print(f"pretraining on {args.mnist} ...", end="", flush=True)
    summary, wall, shown = bc.run_training(command, "pretraining")
    results["pretraining"] = {"checkpoint": os.path.abspath(checkpoint), "sha256": sha256(checkpoint),
                              "mnist_test_accuracy": summary["test_accuracy"],
                              "train_seconds": summary["train_seconds"],
                              "command": shown, "finished": bc.utc_now()}
    # runs that started from an earlier checkpoint do not belong with this one
    results["runs"] = [run for run in results["runs"] if run["arm"] == "scratch"]
    bc.write_json(args.json, results)
    print(f" MNIST test accuracy {bc.percent(summary['test_accuracy'])}, {wall:.0f} s")
    return checkpoint


def command_for(args, arm, seed, checkpoint):
    command = [args.trainer, "--device", args.device, "--threads", str(args.threads), "--data", args.fashion,
               "--train-limit", str(args.labels), "--epochs", str(args.epochs), "--batch", str(args.batch),
               "--lr", repr(args.lr), "--momentum", repr(args.momentum), "--seed", str(seed)]
    if args.test_limit:
        command += ["--test-limit", str(args.test_limit)]
    if args.lr_schedule != "constant":
        command += ["--lr-schedule", args.lr_schedule]
    if arm == "freeze":
        command += ["--init-from", checkpoint, "--freeze", "conv1,conv2"]
    elif arm == "layer-lr":
        scale = repr(args.layer_lr_scale)
        command += ["--init-from", checkpoint, "--layer-lr", f"conv1={scale},conv2={scale}"]
    return command


def find(runs, seed, arm):
    return next((r for r in runs if (r["seed"], r["arm"]) == (seed, arm)), None)


def report(results, args):
    runs = results["runs"]
    seeds = sorted({r["seed"] for r in runs})
    arms = [arm for arm in ARMS if any(r["arm"] == arm for r in runs)]
    scale = results["recipe"]["layer_lr_scale"]
    titles = [ARM_TITLES[arm].replace("S ×", f"{scale:g} ×") for arm in arms]

    def accuracy(seed, arm):
        run = find(runs, seed, arm)
        return "—" if run is None else bc.percent(run["test_accuracy"])

    rows = [[str(seed)] + [accuracy(seed, arm) for arm in arms] for seed in seeds]
    medians = {arm: bc.median([r["test_accuracy"] for r in runs if r["arm"] == arm]) for arm in arms}
    rows.append(["median"] + [bc.percent(medians[arm]) for arm in arms])
    seconds = {arm: bc.median([r["train_seconds"] for r in runs if r["arm"] == arm]) for arm in arms}
    rows.append(["median s"] + [f"{seconds[arm]:.1f}" for arm in arms])
    recipe = results["recipe"]
    print()
    print(f"Fashion-MNIST test accuracy after {recipe['epochs']} epochs on its first {recipe['labels']} training "
          f"images ({recipe['test_limit'] or 10000} test images)")
    print()
    print(bc.markdown_table(["seed"] + titles, rows))
    if "scratch" in arms:
        print()
        for arm in arms[1:]:
            differences = [find(runs, s, arm)["test_accuracy"] - find(runs, s, "scratch")["test_accuracy"]
                           for s in seeds if find(runs, s, arm) and find(runs, s, "scratch")]
            if not differences:
                continue
            higher = sum(d > 0 for d in differences)
            print(f"{ARM_TITLES[arm].replace('S ×', f'{scale:g} ×')} minus from scratch: median "
                  f"{100 * (medians[arm] - medians['scratch']):+.2f} points; per seed "
                  f"{', '.join(f'{100 * d:+.2f}' for d in differences)} "
                  f"(higher in {higher} of {len(differences)} seeds)")
    print()
    pre = results.get("pretraining")
    if pre:
        print(f"pretrained: {pre['command']}  (MNIST test accuracy {bc.percent(pre['mnist_test_accuracy'])})")
    elif "pretrained_sha256" in recipe:
        print(f"pretrained: the --pretrained checkpoint of sha256 {recipe['pretrained_sha256']}")
    print(f"recipe: batch {recipe['batch']}, SGD lr {recipe['lr']} momentum {recipe['momentum']}, "
          f"{recipe['lr_schedule']} schedule; --device {recipe['device']}, {recipe['threads']} threads; "
          "seconds: training time of the run")
    bc.print_sessions(results, args.json)


def main():
    args = parse_args()
    bc.check_data(args.fashion, "--fashion")
    if args.pretrained:
        if not os.path.isfile(args.pretrained):
            bc.fail(f"{args.pretrained}: no such file (--pretrained)")
    else:
        bc.check_data(args.mnist, "--mnist")
    used = {word for arm in args.arms for word in command_for(args, arm, 1, "CKPT")}
    if not args.pretrained:
        used.add("--save")
    bc.check_trainer(args.trainer, sorted(word for word in used if word.startswith("--")) + ["--summary-json"])
    results = bc.load_results(args.json, recipe_of(args))
    needs_checkpoint = any(arm != "scratch" for arm in args.arms)
    checkpoint = pretrain(args, results) if needs_checkpoint else None
    runs = results["runs"]

    for seed in args.seeds:
        for arm in args.arms:
            if find(runs, seed, arm):
                print(f"seed {seed}, {arm}: in {args.json} already, skipped")
                continue
            print(f"seed {seed}, {arm} ...", end="", flush=True)
            label = f"seed {seed}, {arm}"
            summary, wall, shown = bc.run_training(command_for(args, arm, seed, checkpoint), label)
            bc.check_summary(summary, {"init_from": "" if arm == "scratch" else checkpoint,
                                       "train_samples": args.labels, "epochs": args.epochs}, label)
            runs.append({"seed": seed, "arm": arm, "test_accuracy": summary["test_accuracy"],
                         "layer_lr": summary.get("layer_lr"),
                         "train_seconds": summary["train_seconds"], "wall_seconds": wall, "command": shown,
                         "epoch_test_accuracy": summary.get("epoch_test_accuracy"), "finished": bc.utc_now()})
            bc.write_json(args.json, results)
            print(f" {bc.percent(summary['test_accuracy'])}, {summary['train_seconds']:.1f} s training, "
                  f"{wall:.1f} s in all", flush=True)
    report(results, args)
    return 0


if __name__ == "__main__":
    bc.run_main(main, "the --json file")
