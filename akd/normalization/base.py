"""Contract of normalisations.

A normalisation acts on a relation along its **relation axis, the last axis**: each
row of a matrix, each edge vector of an edge tensor (see :mod:`akd.affinity.base`).
The exception is ``mean``, which rescales a whole graph by one scalar (RKD).
"""

from __future__ import annotations

from torch import Tensor, nn


class Normalization(nn.Module):
    #: needs non-negative input (else refused at build time)
    requires_nonnegative: bool = False
    #: output rows are probability distributions (given a valid input)
    probabilities: bool = False
    #: output is non-negative whatever the input
    makes_nonnegative: bool = False
    #: preserves non-negativity of its input
    keeps_nonnegative: bool = True

    def forward(self, rel: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
