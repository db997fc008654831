"""ch10_train_better.py — golden files for Chapter 10 (training better), computed by PyTorch and torchvision.

Run through make_golden.py (`/usr/bin/python3 reference/make_golden.py --chapter 10`). Writes into
reference/golden/ch10/ what its two parts write:

  train_better_augment.py   augmentation: torchvision's F.affine and F.elastic_transform on random digits
  train_better_optim.py     optimisers and schedules: torch.optim's SGD, Adam, AdamW step by step, and
                            torch.optim.lr_scheduler's StepLR, CosineAnnealingLR, OneCycleLR

(make_golden.py takes one generator per chapter, reference/chNN_*.py; this one calls the two.)
"""
import train_better_augment
import train_better_optim


def generate(writer):
    train_better_augment.generate(writer)
    train_better_optim.generate(writer)
