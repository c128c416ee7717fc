"""Images/s of the image-folder pipeline (decode + ImageNet augmentation, 0/1/2 workers) vs one training step.

Writes ``--images`` random JPEGs of ImageNet's typical size (500x375, quality 90) into a temporary folder, then
measures:

* ``decode+augment``: :class:`akd.data.StreamLoader` batches (Pillow decode, RandomResizedCrop(size) + flip, uint8
  to the device) for each worker count, one epoch after a warm-up batch;
* ``train step``: a plain SGD step (forward + backward + update, fp32, channels-first) of the student on a
  ``[batch, 3, size, size]`` batch, so the two rates can be compared: the pipeline keeps up when its images/s exceed
  the step's.

    python benchmarks/bench_image_folder.py --images 256 --size 224 --batch 32 --student resnet18_imagenet
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_jpegs(root: Path, n: int, classes: int = 4, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)
    for split, count in (("train", n), ("val", classes)):
        for i in range(count):
            d = root / split / f"class{i % classes}"
            d.mkdir(parents=True, exist_ok=True)
            img = np.roll(base, int(rng.integers(0, 500)), axis=1)  # textured, not constant: realistic JPEG sizes
            Image.fromarray(img).save(d / f"{i:05d}.jpg", quality=90)


def pipeline_rate(ds, batch: int, workers: int) -> float:
    loader = ds.train_loader(batch, device="cpu", seed=0, workers=workers)
    it = loader.raw_batches(0)
    next(it)  # warm-up: worker start and first batch
    t0, n = time.perf_counter(), 0
    for x, _ in it:
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def step_rate(student: str, batch: int, size: int, steps: int) -> float:
    from akd.models import create_model

    torch.manual_seed(0)
    model = create_model(student, num_classes=1000).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 1000, (batch,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x)["logits"], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--student", default="resnet18_imagenet")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    from akd.data import load_dataset

    print(f"cpus {os.cpu_count()}, torch threads {torch.get_num_threads()}, {args.images} JPEGs 500x375 -> {args.size}")
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(Path(tmp), args.images)
        ds = load_dataset(f"image-folder(root={tmp},size={args.size},mode=stream)")
        for w in (int(v) for v in args.workers.split(",")):
            print(f"decode+augment  workers={w}: {pipeline_rate(ds, args.batch, w):8.1f} images/s")
    print(f"train step      {args.student} batch {args.batch}: {step_rate(args.student, args.batch, args.size, args.steps):8.1f} images/s")


if __name__ == "__main__":
    main()
