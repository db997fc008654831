"""train_better_augment.py — chapter 10's augmentation golden files (part of ch10_train_better.py), computed by
torchvision's F.affine, gaussian_blur and F.elastic_transform, in float64 and rounded to float32 once.

Run through make_golden.py (`/usr/bin/python3 reference/make_golden.py --chapter 10`). Writes into
reference/golden/ch10/:

  augment_affine_s<S>_images    (N, S, S) uint8 random digits-like images, S = 28 and 13
  augment_affine_s<S>_params    (N, 6) float32 [angle, tx, ty, scale, shear_x, shear_y] per image
  augment_affine_s<S>_out       (N, S, S) F.affine(image / 255, *params, bilinear, fill=None), in [0, 1]
  augment_elastic_s<S>_images   (N, S, S) uint8 images
  augment_elastic_s<S>_config   float32 [alpha, sigma]; augment_elastic_s<S>_stream int64 [seed, step]
  augment_elastic_s<S>_dx, _dy  (N, S, S) sample b's displacement in pixels: Philox noise in [-1, 1) (element
                                b * 2 S^2 + k, key seed ^ AUGMENT_KEY, offset step), torchvision's gaussian_blur
                                (kernel int(8 sigma + 1) made odd, reflect padding), times alpha
  augment_elastic_s<S>_out      (N, S, S) F.elastic_transform(image / 255, (dx, dy) * 2 / S, bilinear, fill=None)
  augment_params_stream         int64 [seed, step_0, step_1, ...]
  augment_params_affine         (steps, N, 6) float32: the parameters augment_draw_affine draws for sample b of
                                each step with the default config on 28x28 images, reimplemented here from the
                                same Philox numbers (float32 arithmetic, as the C code)

F.elastic_transform's displacement is in grid_sample's [-1, 1] coordinates, where one image width spans 2:
d pixels are d * 2 / S there. (torchvision's ElasticTransform(alpha) scales its smoothed noise by alpha / S, so it
displaces by alpha / 2 pixels; the course's alpha is in pixels.)

fill=None, not RandomAffine's default fill=[0.0]: with a fill, torchvision's _apply_grid_transform also samples
a channel of ones and returns image * mask + (1 - mask) * fill, so with fill 0 every output pixel whose bilinear
footprint reaches outside the image is multiplied by its in-image weight a second time (darker borders than
grid_sample's zero padding alone); generate() checks both that equality and that the difference exists.
"""
import numpy as np
import torch
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

from ch06_layers import MASK32, philox4x32_10
from golden import f64, out32

SEED = 20261206
AUGMENT_KEY = 0xA5A5A5A55A5A5A5A  # augment.h
AFFINE_DRAWS = 5  # augment_math.h: angle, tx, ty, scale, shear_x

AFFINE_CASES = {
    # size: [angle, tx, ty, scale, shear_x, shear_y] per image
    28: [
        [0.0, 0, 0, 1.0, 0.0, 0.0],
        [89.5, 0, 0, 1.0, 0.0, 0.0],
        [-90.3, 2, -1, 1.0, 0.0, 0.0],
        [10.0, 3, -2, 0.9, 0.0, 0.0],
        [-7.5, -3, 1, 1.1, 10.0, 0.0],
        [33.0, 0, 0, 0.75, -10.0, 5.0],
        [180.0, 1, 1, 1.25, 0.0, 0.0],
        [4.2, 0, 0, 1.0, 25.0, 0.0],
    ],
    13: [
        [91.0, 1, 0, 1.0, 0.0, 0.0],
        [-45.0, 0, 2, 0.8, 7.0, 0.0],
        [12.5, -2, -1, 1.2, -10.0, 0.0],
        [0.0, 0, 0, 1.0, 0.0, 0.0],
    ],
}

ELASTIC_CASES = [
    # size, images, alpha (pixels), sigma, seed, step
    (28, 3, 34.0, 4.0, 0x0123456789ABCDEF, 12345),
    (13, 2, 6.0, 1.5, 7, 2**33 + 5),
]

PARAMS_STEPS = [0, 1, 12345, 2**33 + 7]
PARAMS_SAMPLES = 17
PARAMS_SIZE = 28


def philox_uniform(seed, offset, first, count):
    """Elements first .. first + count - 1 of Philox stream (seed, offset) as float32 uniforms in [0, 1), as
    common/philox.h's philox_uniform: the top 24 bits of word i % 4 of block i // 4, times 2^-24."""
    key = [seed & MASK32, seed >> 32]
    out = np.empty(count, dtype=np.float32)
    block_words = {}
    for j in range(count):
        i = first + j
        block = i // 4
        if block not in block_words:
            block_words = {block: philox4x32_10([block & MASK32, block >> 32, offset & MASK32, offset >> 32], key)}
        out[j] = np.float32(block_words[block][i % 4] >> 8) * np.float32(2.0**-24)
    return out


def digit_like(rng, count, size):
    """Random images of digit-like statistics: mostly 0, some strokes up to 255, so edges and interiors both show."""
    images = rng.integers(0, 256, size=(count, size, size))
    images[rng.random((count, size, size)) < 0.55] = 0
    return images.astype(np.uint8)


def affine_reference(image, params, fill):
    """F.affine on the float64 image / 255, bilinear, with the given fill (None: plain grid_sample)."""
    angle, tx, ty, scale, shear_x, shear_y = [float(v) for v in params]
    return F.affine(f64(image.astype(np.float64) / 255.0)[None], angle=angle, translate=[tx, ty], scale=scale,
                    shear=[shear_x, shear_y], interpolation=InterpolationMode.BILINEAR, fill=fill)[0]


def kernel_size(sigma):
    taps = int(8 * sigma + 1)
    return taps + 1 if taps % 2 == 0 else taps


def draw_affine(seed, step, sample, size):
    """augment_draw_affine_math with the default config (degrees 10, translate 0.1, scale 0.9..1.1, shear 10), in
    float32 arithmetic; torchvision's uniform_(lo, hi) is lo + (hi - lo) * u, its round() half to even."""
    u = philox_uniform(seed ^ AUGMENT_KEY, step, sample * AFFINE_DRAWS, AFFINE_DRAWS)
    f = np.float32

    def between(lo, hi, x):
        return f(lo) + (f(hi) - f(lo)) * x

    max_shift = f(0.1) * f(size)
    return [between(f(-10.0), f(10.0), u[0]), np.rint(between(-max_shift, max_shift, u[1])),
            np.rint(between(-max_shift, max_shift, u[2])), between(f(0.9), f(1.1), u[3]),
            between(f(-10.0), f(10.0), u[4]), f(0.0)]


def generate(writer):
    rng = np.random.default_rng(SEED)

    for size, cases in AFFINE_CASES.items():
        params = np.array(cases, dtype=np.float32)
        images = digit_like(rng, len(cases), size)
        out = torch.stack([affine_reference(images[i], params[i], None) for i in range(len(cases))])
        writer.save(f"augment_affine_s{size}_images", images)
        writer.save(f"augment_affine_s{size}_params", params)
        writer.save(f"augment_affine_s{size}_out", out32(out))
        # The fill quirk (module docstring): with fill=[0.0] the output is the fill=None output times the
        # transformed ones image, which differs from it wherever a bilinear footprint leaves the image.
        with_fill = torch.stack([affine_reference(images[i], params[i], [0.0]) for i in range(len(cases))])
        ones = np.full((size, size), 255, dtype=np.uint8)
        mask = torch.stack([affine_reference(ones, params[i], None) for i in range(len(cases))])
        if not (torch.allclose(with_fill, out * mask, rtol=0, atol=1e-12) and (with_fill - out).abs().max() > 1e-3):
            raise AssertionError("F.affine with fill=[0.0] no longer equals F.affine(fill=None) times the mask")

    for size, count, alpha, sigma, seed, step in ELASTIC_CASES:
        images = digit_like(rng, count, size)
        taps = kernel_size(sigma)
        fields, outs = [], []
        for b in range(count):
            u = philox_uniform(seed ^ AUGMENT_KEY, step, b * 2 * size * size, 2 * size * size)
            noise = f64(2.0 * u.astype(np.float64) - 1.0).reshape(2, 1, size, size)  # exact: u has 24 bits
            field = F.gaussian_blur(noise, [taps, taps], [sigma, sigma]) * alpha  # (2, 1, S, S) pixels
            displacement = (field[:, 0] * (2.0 / size)).permute(1, 2, 0)[None]  # (1, S, S, 2) in [-1, 1] units
            image = f64(images[b].astype(np.float64) / 255.0)[None]
            outs.append(F.elastic_transform(image, displacement, InterpolationMode.BILINEAR, None)[0])
            fields.append(field[:, 0])
        fields = torch.stack(fields)  # (N, 2, S, S)
        writer.save(f"augment_elastic_s{size}_images", images)
        writer.save(f"augment_elastic_s{size}_config", np.array([alpha, sigma], dtype=np.float32))
        writer.save(f"augment_elastic_s{size}_stream", np.array([seed, step], dtype=np.int64))
        writer.save(f"augment_elastic_s{size}_dx", out32(fields[:, 0]))
        writer.save(f"augment_elastic_s{size}_dy", out32(fields[:, 1]))
        writer.save(f"augment_elastic_s{size}_out", out32(torch.stack(outs)))

    drawn = [[draw_affine(SEED, step, b, PARAMS_SIZE) for b in range(PARAMS_SAMPLES)] for step in PARAMS_STEPS]
    writer.save("augment_params_stream", np.array([SEED] + PARAMS_STEPS, dtype=np.int64))
    writer.save("augment_params_affine", np.array(drawn, dtype=np.float32))
