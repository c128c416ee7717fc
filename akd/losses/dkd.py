from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import require
from ._registry import LOSSES
from .base import MatchLoss


def _binary_and_rest(z: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """log [p_gt, 1 − p_gt] ([B, 2]) and log p̂ over the non-target classes ([B, C], 0 at the target), stably."""
    lse_all = z.logsumexp(dim=-1, keepdim=True)
    other = z.masked_fill(gt, float("-inf"))
    lse_other = other.logsumexp(dim=-1, keepdim=True)
    log_b = torch.cat([(z.where(gt, z.new_zeros(())).sum(dim=-1, keepdim=True)) - lse_all, lse_other - lse_all], dim=-1)
    log_rest = torch.where(gt, z.new_zeros(()), other - lse_other)  # the target entry is excluded (set to log 1 = 0)
    return log_b, log_rest


@LOSSES.register("dkd", aliases=("decoupled-kd",))
class DecoupledKD(MatchLoss):
    """Decoupled KD: L = α·TCKD + β·NCKD, each T² · (1/B) Σ_i KL(teacher ‖ student), KL summed over classes.

    With p = softmax(z / T) and the label y_i of sample i:

    * TCKD = T² · (1/B) Σ_i KL(b^t_i ‖ b^s_i), b_i = [p_{i,y_i}, 1 − p_{i,y_i}] (target vs. all other classes);
    * NCKD = T² · (1/B) Σ_i KL(p̂^t_i ‖ p̂^s_i), p̂_ik = p_ik / Σ_{l≠y_i} p_il over the classes k ≠ y_i.

    Source: Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022; defaults α = 1, β = 8, T = 4 are
    mdistiller's CIFAR-100 setting (``CFG.DKD``; β = 8 for resnet32x4→resnet8x4, other pairs use 2 or 6 in its
    ``configs/cifar100/dkd/*.yaml``).  The reference masks the target with ``logits/T − 1000·gt``; here the
    target is excluded exactly and every log-probability comes from log-sum-exp (no log of a softmax), which
    agrees to within the reference's e^{−1000} and never gives log 0.  Instance term on raw logits (affinity
    ``identity``, norm ``none``), real view only; needs the labels.  mdistiller's linear warm-up of the DKD
    weight over 20 epochs is the term key ``schedule = "linear-warmup(epochs=20)"``, not part of this loss.
    """

    instance = True
    elementwise = False
    needs_targets = True

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, t: float = 4.0):
        super().__init__()
        require(alpha >= 0, f"dkd: alpha={alpha} must be >= 0")
        require(beta >= 0, f"dkd: beta={beta} must be >= 0")
        require(alpha > 0 or beta > 0, "dkd: alpha and beta cannot both be 0")
        require(t > 0, f"dkd: t={t} must be > 0")
        self.alpha, self.beta, self.t = alpha, beta, t

    def forward(self, s: Tensor, t: Tensor, mask: Tensor | None = None, targets: Tensor | None = None) -> Tensor:
        gt = F.one_hot(targets, s.shape[-1]).bool()
        log_bs, log_rs = _binary_and_rest(s / self.t, gt)
        log_bt, log_rt = _binary_and_rest(t / self.t, gt)
        tckd = F.kl_div(log_bs, log_bt, reduction="batchmean", log_target=True)
        # the target entries hold log 1 = 0 for both: teacher weight exp(0) · (0 − 0) = 0, so they add nothing
        nckd = F.kl_div(log_rs, log_rt, reduction="batchmean", log_target=True)
        return (self.alpha * tckd + self.beta * nckd) * self.t**2
