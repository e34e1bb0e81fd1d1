#!/usr/bin/env python3
"""The peer of retrain-bench-input: a PIL + torchvision training transform.

    /usr/bin/python3 bench/input_pipeline.py --images DIR [--passes 3] [--image_size 299]
    /usr/bin/python3 bench/input_pipeline.py --make_images DIR --count N [--seed 1]

Reads every JPEG under DIR (recursively, by content) into memory, then on one
process and one thread (torch.set_num_threads(1)) runs what a PyTorch user
writes for Inception training on each image's bytes:

    PIL decode (Image.open(BytesIO(bytes)).convert("RGB"))
    RandomResizedCrop(image_size, scale=(0.1, 1.0), ratio=(0.75, 1.33))
    RandomHorizontalFlip()
    ColorJitter(brightness=32/255, contrast=0.5, saturation=0.5, hue=0.2)
    ToTensor()
    Normalize([0.5] * 3, [0.5] * 3)        # to [-1, 1]

The crop's area and aspect ranges are the reference's (the effective minimum
area is 0.1 there); ColorJitter applies its four adjustments in a random order
with factors in the same ranges (brightness multiplicative rather than
additive). Prints one line and, last, a JSON object with images per second of
CPU time and of wall time.

--no_color leaves ColorJitter out (decode + crop + flip + tensor only).
--make_images writes N photo-like 500x375 JPEGs (quality 90) with PIL, for
machines without retrain-make-images.
"""
import argparse
import io
import json
import os
import random
import sys
import time


def load_jpegs(directory):
    paths = []
    for root, _, files in os.walk(directory):
        for name in files:
            paths.append(os.path.join(root, name))
    out = []
    for path in sorted(paths):
        with open(path, "rb") as f:
            data = f.read()
        if data[:2] == b"\xff\xd8":
            out.append(data)
    return out


def make_images(directory, count, seed):
    import numpy as np
    from PIL import Image

    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = 375, 500
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(count):
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (0.2 * w) ** 2))
        phase = rng.uniform(0, 6.28)
        tex = 10 * np.sin(xx * 0.8 + phase) * np.cos(yy * 0.6 - phase)
        noise = rng.normal(0, 6, (h, w))
        r = 40 + 150 * xx / w + 70 * blob + tex + noise
        g = 60 + 120 * yy / h + 40 * np.sin(6 * xx / w + phase) + noise
        b = 90 + 80 * (1 - xx / w) * yy / h + 90 * blob - tex + noise
        img = np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)
        Image.fromarray(img, "RGB").save(
            os.path.join(directory, "%06d.jpg" % i), quality=90, subsampling=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--image_size", type=int, default=299)
    parser.add_argument("--make_images")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no_color", action="store_true",
                        help="leave ColorJitter out (for context: decode + crop + flip only)")
    args = parser.parse_args()

    if args.make_images:
        make_images(args.make_images, args.count, args.seed)
        return 0
    if not args.images:
        parser.error("--images or --make_images is required")

    import torch
    from PIL import Image
    from torchvision import transforms

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    jpegs = load_jpegs(args.images)
    if not jpegs:
        print("input_pipeline.py: no JPEG files under %s" % args.images, file=sys.stderr)
        return 1
    s = args.image_size
    steps = [
        transforms.RandomResizedCrop(s, scale=(0.1, 1.0), ratio=(0.75, 1.33)),
        transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(brightness=32.0 / 255.0, contrast=0.5, saturation=0.5, hue=0.2),
        transforms.ToTensor(),
        transforms.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    ]
    if args.no_color:
        steps = [t for t in steps if not isinstance(t, transforms.ColorJitter)]
    transform = transforms.Compose(steps)

    def one(data):
        image = Image.open(io.BytesIO(data)).convert("RGB")
        out = transform(image)
        assert out.shape == (3, s, s)
        return out

    for data in jpegs[:20]:  # warm-up
        one(data)
    c0, t0 = time.process_time(), time.perf_counter()
    n = 0
    for _ in range(args.passes):
        for data in jpegs:
            one(data)
            n += 1
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    print("peer (PIL + torchvision%s, 1 thread): %.1f images/s of CPU time, %.1f images/s wall "
          "(%d images, %.3f ms each)" % (" without ColorJitter" if args.no_color else "",
                                         n / cpu, n / wall, n, cpu * 1e3 / n))
    print(json.dumps({"images": n, "cpu_s": cpu, "wall_s": wall,
                      "images_per_cpu_s": n / cpu, "images_per_s": n / wall,
                      "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
