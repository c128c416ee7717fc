"""Distil with an akd objective in a plain PyTorch loop (no akd engine): VRM, with its virtual views.

Synthetic 16x16 images (class prototype + noise); a CNN teacher trained with CE, then a tiny student distilled
with akd's "vrm" preset (CE + virtual-relation/zs/mse on logits).  python examples/own_training_loop.py [--steps N]
"""
import argparse

import torch
from torch import nn

import akd

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=200)
steps = parser.parse_args().steps
torch.manual_seed(0)
C, B, MEAN, STD = 10, 64, (0.5,), (0.3,)
prototypes = torch.rand(C, 1, 16, 16)


def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:  # n images, normalised as (pixel - MEAN) / STD
    y = torch.randint(0, C, (n,))
    pixels = 0.3 * prototypes[y] + 0.7 * torch.rand(n, 1, 16, 16)
    return (pixels - MEAN[0]) / STD[0], y


def cnn(width: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                         nn.Linear(16 * width, C))


teacher, student = cnn(32), cnn(2)
opt = torch.optim.SGD(teacher.parameters(), lr=0.05, momentum=0.9)
for _ in range(steps):  # 1. the teacher: plain cross-entropy
    x, y = batch(B)
    loss = nn.functional.cross_entropy(teacher(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
teacher.eval()

objective = akd.build_objective("vrm")  # objective.views == 1: rows [real; virtual]
views = torch.Generator().manual_seed(1)
opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
for step in range(steps):  # 2. the student: distilled with VRM over real + RandAugment views
    x, y = batch(B)
    x_all = akd.virtual_views(x, objective.views, views, mean=MEAN, std=STD)  # [(1+k)*B, 1, 16, 16]
    with torch.no_grad():
        t_out = {"logits": teacher(x_all)}
    losses = objective({"logits": student(x_all)}, t_out, y, batch_size=B)  # batch_size: B real images
    opt.zero_grad()
    losses["total"].backward()
    opt.step()
    if step % 50 == 0 or step == steps - 1:
        print(f"step {step}: " + ", ".join(f"{k} {v.item():.4f}" for k, v in losses.items()))

x, y = batch(2000)
with torch.no_grad():
    for name, net in (("teacher", teacher), ("student", student)):
        print(f"{name} accuracy: {(net(x).argmax(1) == y).float().mean().item():.2%}")
