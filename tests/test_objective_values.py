"""Preset and triple values against slow, independently written reference formulas.

The references below use plain Python floats (double precision) and explicit loops over
i, j (, k); they are written from the papers / reference code (RKD, SP, PKT, CC, Hinton KD,
VRM) and the documented conventions, never by calling akd.  akd computes relations in fp32,
so values are compared to 1e-5 relative / 1e-6 absolute.

A second part checks the stored loss-value fixture (tests/fixtures/loss_values.json, made
by tests/fixtures/make_loss_values.py) so that a silent change of any formula is caught.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from akd import METHODS, build_objective

RTOL, ATOL = 1e-5, 1e-6
B, C, D = 6, 7, 9  # batch, classes, pooled features
MAP = (3, 2, 2)  # feature map C×H×W for SP
FIXTURES = Path(__file__).parent / "fixtures"


def approx(ref: float):
    return pytest.approx(ref, rel=RTOL, abs=ATOL)


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def randn(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(*shape, generator=gen) * scale).float()


def make_batch(seed: int, rows: int = B, classes: int = C):
    g = torch.Generator().manual_seed(seed)
    s = {"logits": randn(g, rows, classes, scale=2.0), "pooled": randn(g, rows, D), "map": randn(g, rows, *MAP)}
    t = {"logits": randn(g, rows, classes, scale=2.0), "pooled": randn(g, rows, D), "map": randn(g, rows, *MAP)}
    y = torch.randint(0, classes, (rows,), generator=g)
    return s, t, y


def L(x: torch.Tensor) -> list:
    """A tensor as nested Python lists of doubles (the references never see tensors)."""
    return x.double().tolist()


# ---------------------------------------------------------------------------------------------
# reference formulas (plain Python)
# ---------------------------------------------------------------------------------------------
def dot(u, v):
    return sum(a * b for a, b in zip(u, v))


def norm2(u):
    return math.sqrt(sum(a * a for a in u))


def flat(x):
    if isinstance(x, list) and x and isinstance(x[0], list):
        out = []
        for e in x:
            out.extend(flat(e))
        return out
    return list(x) if isinstance(x, list) else [x]


def logsumexp(v):
    m = max(v)
    return m + math.log(sum(math.exp(a - m) for a in v))


def softmax(v, t=1.0):
    v = [a / t for a in v]
    lse = logsumexp(v)
    return [math.exp(a - lse) for a in v]


def smooth_l1(d, beta=1.0):
    return 0.5 * d * d / beta if abs(d) < beta else abs(d) - 0.5 * beta


def ref_ce(z, y):
    n = len(y)
    return sum(logsumexp(z[i]) - z[i][y[i]] for i in range(n)) / n


def ref_kd(zs, zt, T=4.0):
    """Hinton: T² · (1/B) Σ_i KL(softmax(t_i/T) ‖ softmax(s_i/T))."""
    n = len(zs)
    tot = 0.0
    for i in range(n):
        ps, pt = softmax(zs[i], T), softmax(zt[i], T)
        tot += sum(pt[c] * (math.log(pt[c]) - math.log(ps[c])) for c in range(len(pt)))
    return T * T * tot / n


def ref_pdist(x, eps=1e-12):
    """RKD's pdist: √max(‖x_i − x_j‖², eps) off the diagonal, 0 on it (so duplicates give √eps > 0)."""
    n = len(x)
    return [[0.0 if i == j else math.sqrt(max(sum((a - b) ** 2 for a, b in zip(x[i], x[j])), eps)) for j in range(n)]
            for i in range(n)]


def ref_rkd_distance(fs, ft):
    """RKD-D: distances / mean of positive distances (each side), smooth-l1 mean over all B² entries."""
    n = len(fs)
    ds, dt = ref_pdist(fs), ref_pdist(ft)

    def mean_pos(d):
        pos = [d[i][j] for i in range(n) for j in range(n) if d[i][j] > 0]
        return sum(pos) / len(pos)

    ms, mt = mean_pos(ds), mean_pos(dt)
    return sum(smooth_l1(ds[i][j] / ms - dt[i][j] / mt) for i in range(n) for j in range(n)) / (n * n)


def ref_angles(x):
    n = len(x)
    e = [[None] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            diff = [b - a for a, b in zip(x[i], x[j])]  # x_j - x_i
            nr = norm2(diff)
            e[i][j] = [d / max(nr, 1e-12) for d in diff]
    return [[[dot(e[i][j], e[i][k]) for k in range(n)] for j in range(n)] for i in range(n)]


def ref_rkd_angle(fs, ft):
    n = len(fs)
    a_s, a_t = ref_angles(fs), ref_angles(ft)
    tot = sum(smooth_l1(a_s[i][j][k] - a_t[i][j][k]) for i in range(n) for j in range(n) for k in range(n))
    return tot / n**3


def ref_sp(ms, mt):
    """SP: G = Q Qᵀ of the flattened map, rows L2-normalised, ‖G_s − G_t‖²_F / B²."""
    n = len(ms)

    def gram_rows(m):
        q = [flat(m[i]) for i in range(n)]
        g = [[dot(q[i], q[j]) for j in range(n)] for i in range(n)]
        return [[v / max(norm2(row), 1e-12) for v in row] for row in g]

    gs, gt = gram_rows(ms), gram_rows(mt)
    return sum((gs[i][j] - gt[i][j]) ** 2 for i in range(n) for j in range(n)) / (n * n)


def ref_pkt(fs, ft, eps=1e-7):
    """PKT (RepDistiller): x/(‖x‖+eps), cosine, (c+1)/2, row-sum normalise, mean t·log((t+eps)/(s+eps))."""
    n = len(fs)

    def cond_prob(x):
        xh = [[a / (norm2(r) + eps) for a in r] for r in x]
        c = [[(dot(xh[i], xh[j]) + 1.0) / 2.0 for j in range(n)] for i in range(n)]
        return [[v / sum(row) for v in row] for row in c]

    s, t = cond_prob(fs), cond_prob(ft)
    return sum(t[i][j] * math.log((t[i][j] + eps) / (s[i][j] + eps)) for i in range(n) for j in range(n)) / (n * n)


def ref_rbf_taylor(x, gamma=0.4, order=2):
    n = len(x)
    xh = [[a / max(norm2(r), 1e-12) for a in r] for r in x]
    out = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            c = dot(xh[i], xh[j])
            if order is None:
                out[i][j] = math.exp(-gamma * (2.0 - 2.0 * c))
            else:
                out[i][j] = sum(math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) * c**p for p in range(order + 1))
    return out


def ref_cc(fs, ft, gamma=0.4, order=2):
    n = len(fs)
    ks, kt = ref_rbf_taylor(fs, gamma, order), ref_rbf_taylor(ft, gamma, order)
    return sum((ks[i][j] - kt[i][j]) ** 2 for i in range(n) for j in range(n)) / (n * n)


def ref_zs(v, eps=1e-7):
    m = sum(v) / len(v)
    var = sum((a - m) ** 2 for a in v) / len(v)
    return [(a - m) / math.sqrt(var + eps) for a in v]


def ref_quantile(values, q):
    """Linear-interpolation quantile (numpy/torch default)."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def ref_entropy(z):
    p = softmax(z)
    return -sum(a * math.log(a) for a in p if a > 0)


def ref_keep_sample(i, j, batch, redundant):
    real_i, real_j = i < batch, j < batch
    if redundant == "none":
        return True
    if redundant == "symmetric":
        return i < j
    if redundant == "cross-view":
        return real_i != real_j
    if redundant == "both":
        return i < j and real_i != real_j
    raise AssertionError(redundant)


def ref_keep_class(a, b, redundant):
    return a < b if redundant in ("symmetric", "both") else True


def ref_vrm_graphs(zs, zt, batch, redundant="symmetric", unreliable="joint-entropy", q=0.9, norm="zs"):
    """VRM's inter-sample [N,N,C] and inter-class [C,C,N] edge-vector graphs over N = (1+k)B nodes.

    Returns (L_is, L_ic, margin): mse over kept edges of per-edge z-scored vectors; margin is the
    smallest |H_i + H_j − threshold| (to check that the fixed test inputs are not borderline).
    """
    n, c = len(zs), len(zs[0])
    nrm = ref_zs if norm == "zs" else (lambda v: v)
    keep = {(i, j): ref_keep_sample(i, j, batch, redundant) for i in range(n) for j in range(n)}
    margin = math.inf
    if unreliable == "joint-entropy":
        h = [ref_entropy(zs[i]) for i in range(n)]  # the student's predictions
        off = [h[i] + h[j] for i in range(n) for j in range(n) if i != j]
        thr = ref_quantile(off, q)
        for i in range(n):
            for j in range(n):
                keep[i, j] = keep[i, j] and h[i] + h[j] <= thr
                if i != j:
                    margin = min(margin, abs(h[i] + h[j] - thr))
    tot, kept = 0.0, 0
    for i in range(n):
        for j in range(n):
            if not keep[i, j]:
                continue
            es = nrm([zs[i][k] - zs[j][k] for k in range(c)])
            et = nrm([zt[i][k] - zt[j][k] for k in range(c)])
            tot += sum((a - b) ** 2 for a, b in zip(es, et))
            kept += 1
    l_is = tot / (max(kept, 1) * c)
    tot, kept = 0.0, 0
    for a in range(c):
        for b in range(c):
            if not ref_keep_class(a, b, redundant):
                continue
            es = nrm([zs[r][a] - zs[r][b] for r in range(n)])
            et = nrm([zt[r][a] - zt[r][b] for r in range(n)])
            tot += sum((u - v) ** 2 for u, v in zip(es, et))
            kept += 1
    l_ic = tot / (max(kept, 1) * n)
    return l_is, l_ic, margin


# ---------------------------------------------------------------------------------------------
# the references themselves are sane
# ---------------------------------------------------------------------------------------------
def test_reference_helpers_sanity():
    assert ref_quantile([0.0, 1.0, 2.0, 3.0, 4.0], 0.9) == pytest.approx(3.6)
    assert ref_quantile([5.0, 1.0], 1.0) == 5.0
    v = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0], dtype=torch.float64)
    assert ref_quantile(v.tolist(), 0.37) == pytest.approx(torch.quantile(v, 0.37).item())
    assert sum(softmax([1.0, 2.0, 3.0])) == pytest.approx(1.0)
    assert ref_zs([2.0, 2.0, 2.0]) == [0.0, 0.0, 0.0]
    assert smooth_l1(0.5) == 0.125 and smooth_l1(-3.0) == 2.5
    assert ref_pdist([[0.0, 0.0], [3.0, 4.0]])[0][1] == 5.0


# ---------------------------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_ce_preset(seed):
    s, t, y = make_batch(seed)
    out = build_objective("ce")(s, t, y)
    ref = ref_ce(L(s["logits"]), y.tolist())
    assert out["ce"].item() == approx(ref)
    assert out["total"].item() == approx(ref)


@pytest.mark.parametrize("seed", [0, 1])
def test_kd_preset(seed):
    s, t, y = make_batch(seed)
    out = build_objective("kd")(s, t, y)
    ce, kd = ref_ce(L(s["logits"]), y.tolist()), ref_kd(L(s["logits"]), L(t["logits"]), T=4.0)
    assert out["ce"].item() == approx(0.1 * ce)
    assert out["kd"].item() == approx(0.9 * kd)
    assert out["total"].item() == approx(0.1 * ce + 0.9 * kd)


@pytest.mark.parametrize("seed", [0, 1])
def test_rkd_preset(seed):
    s, t, y = make_batch(seed)
    out = build_objective("rkd")(s, t, y)
    ce = ref_ce(L(s["logits"]), y.tolist())
    dist = ref_rkd_distance(L(s["pooled"]), L(t["pooled"]))
    ang = ref_rkd_angle(L(s["pooled"]), L(t["pooled"]))
    assert dist > 1e-3 and ang > 1e-3  # non-trivial inputs
    assert out["rkd-distance"].item() == approx(25.0 * dist)
    assert out["rkd-angle"].item() == approx(50.0 * ang)
    assert out["total"].item() == approx(ce + 25.0 * dist + 50.0 * ang)


def test_rkd_distance_with_duplicate_rows():
    """Duplicate rows give the distance √1e-12 (RKD's pdist clamp), which counts as positive in the mean."""
    s, t, y = make_batch(5)
    s["pooled"][3] = s["pooled"][1]
    t["pooled"][4] = t["pooled"][0]
    out = build_objective("rkd")(s, t, y)
    assert out["rkd-distance"].item() == approx(25.0 * ref_rkd_distance(L(s["pooled"]), L(t["pooled"])))
    assert out["rkd-angle"].item() == approx(50.0 * ref_rkd_angle(L(s["pooled"]), L(t["pooled"])))


@pytest.mark.parametrize("seed", [0, 1])
def test_sp_preset(seed):
    s, t, y = make_batch(seed)
    out = build_objective("sp")(s, t, y)
    ce = ref_ce(L(s["logits"]), y.tolist())
    sp = ref_sp(L(s["map"]), L(t["map"]))
    assert sp > 1e-4
    assert out["sp"].item() == approx(3000.0 * sp)
    assert out["total"].item() == approx(ce + 3000.0 * sp)


@pytest.mark.parametrize("seed", [0, 1])
def test_pkt_preset(seed):
    s, t, y = make_batch(seed)
    out = build_objective("pkt")(s, t, y)
    ce = ref_ce(L(s["logits"]), y.tolist())
    pkt = ref_pkt(L(s["pooled"]), L(t["pooled"]))
    assert pkt > 1e-6
    assert out["pkt"].item() == approx(30000.0 * pkt)
    assert out["total"].item() == approx(ce + 30000.0 * pkt)


def test_pkt_preset_with_tiny_and_zero_rows():
    """x / (‖x‖ + 1e-7): a row of norm 1e-7 is only half normalised, a zero row stays 0 (cosine 0 → 0.5)."""
    s, t, y = make_batch(4)
    s["pooled"][2] = s["pooled"][2] / s["pooled"][2].norm() * 1e-7
    s["pooled"][4] = 0.0
    t["pooled"][1] = t["pooled"][1] / t["pooled"][1].norm() * 3e-7
    out = build_objective("pkt")(s, t, y)
    assert out["pkt"].item() == approx(30000.0 * ref_pkt(L(s["pooled"]), L(t["pooled"])))


@pytest.mark.parametrize("seed", [0, 1])
def test_cc_preset(seed):
    s, t, y = make_batch(seed)
    out = build_objective("cc")(s, t, y)
    ce = ref_ce(L(s["logits"]), y.tolist())
    cc = ref_cc(L(s["pooled"]), L(t["pooled"]), gamma=0.4, order=2)
    assert cc > 1e-6
    assert out["cc"].item() == approx(100.0 * cc)
    assert out["total"].item() == approx(ce + 100.0 * cc)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vrm_preset(seed):
    s, t, y = make_batch(seed, rows=2 * B)  # [real; virtual] rows
    y = y[:B]
    out = build_objective("vrm-zs-edge")(s, t, y, batch_size=B)
    ce = ref_ce(L(s["logits"][:B]), y.tolist())
    l_is, l_ic, margin = ref_vrm_graphs(L(s["logits"]), L(t["logits"]), B, "symmetric", "joint-entropy", 0.9)
    assert margin > 1e-4  # the fixed inputs are not borderline for the fp32 entropy threshold
    assert out["vrm/is"].item() == approx(l_is)
    assert out["vrm/ic"].item() == approx(l_ic)
    assert out["vrm"].item() == approx(l_is + l_ic)
    assert out["ce"].item() == approx(ce)
    assert out["total"].item() == approx(ce + l_is + l_ic)


def test_vrm_joint_entropy_actually_prunes():
    """Sanity check of the reference: with pruning the value differs from the unpruned one."""
    s, t, _ = make_batch(0, rows=2 * B)
    pruned = ref_vrm_graphs(L(s["logits"]), L(t["logits"]), B, "symmetric", "joint-entropy", 0.9)[0]
    unpruned = ref_vrm_graphs(L(s["logits"]), L(t["logits"]), B, "symmetric", "none")[0]
    assert abs(pruned - unpruned) > 1e-4


def test_vrm_with_explicit_batch_size_reads_only_needed_rows():
    s, t, y = make_batch(3, rows=2 * B + 2)
    y = y[:B]
    out = build_objective("vrm-zs-edge")(s, t, y, batch_size=B)
    l_is, l_ic, _ = ref_vrm_graphs(L(s["logits"][: 2 * B]), L(t["logits"][: 2 * B]), B, "symmetric", "joint-entropy", 0.9)
    assert out["vrm"].item() == approx(l_is + l_ic)


def test_every_preset_is_covered_here():
    covered = {"ce", "kd", "rkd", "sp", "pkt", "cc", "vrm-zs-edge"}
    covered |= {"vrm"}  # its loop references (the paper reading) are in tests/test_vrm_readings.py
    covered |= {"dist", "dkd", "kd-ls"}  # their loop references are in tests/test_baselines.py
    assert set(METHODS.names()) == covered, "a new preset needs a reference test here"


# ---------------------------------------------------------------------------------------------
# generic triples vs loops
# ---------------------------------------------------------------------------------------------
def test_cosine_softmax_kl_batchmean():
    s, t, _ = make_batch(11)
    out = build_objective([{"source": "pooled", "affinity": "cosine", "norm": "softmax", "loss": "kl"}])(s, t)

    def rel(x):
        xh = [[a / (norm2(r) + 1e-7) for a in r] for r in x]
        return [softmax([dot(xh[i], xh[j]) for j in range(len(x))]) for i in range(len(x))]

    ps, pt = rel(L(s["pooled"])), rel(L(t["pooled"]))
    eps = 1e-7
    rows = [sum(pt[i][j] * (math.log(pt[i][j] + eps) - math.log(ps[i][j] + eps)) for j in range(B)) for i in range(B)]
    assert out["total"].item() == approx(sum(rows) / B)


def test_gram_softmax_t_kl_mean():
    s, t, _ = make_batch(12)
    spec = [{"source": "pooled", "affinity": "gram", "norm": "softmax(t=4.0)", "loss": "kl(reduction='mean')"}]
    out = build_objective(spec)(s, t)

    def rel(x):
        return [softmax([dot(x[i], x[j]) for j in range(len(x))], t=4.0) for i in range(len(x))]

    ps, pt = rel(L(s["pooled"])), rel(L(t["pooled"]))
    eps = 1e-7
    tot = sum(pt[i][j] * (math.log(pt[i][j] + eps) - math.log(ps[i][j] + eps)) for i in range(B) for j in range(B))
    assert out["total"].item() == approx(tot / (B * B))


def test_edge_l2_mse_symmetric():
    s, t, _ = make_batch(13)
    spec = [{"source": "pooled", "affinity": "edge", "norm": "l2", "loss": "mse", "redundant": "symmetric", "weight": 2.0}]
    out = build_objective(spec)(s, t)
    xs, xt = L(s["pooled"]), L(t["pooled"])
    tot, kept = 0.0, 0
    for i in range(B):
        for j in range(i + 1, B):
            es = [a - b for a, b in zip(xs[i], xs[j])]
            et = [a - b for a, b in zip(xt[i], xt[j])]
            es = [a / norm2(es) for a in es]
            et = [a / norm2(et) for a in et]
            tot += sum((a - b) ** 2 for a, b in zip(es, et))
            kept += 1
    assert kept == B * (B - 1) // 2
    assert out["total"].item() == approx(2.0 * tot / (kept * D))


def test_class_edge_zs_l1():
    s, t, _ = make_batch(14)
    out = build_objective("class-edge/zs/l1")(s, t)
    zs, zt = L(s["logits"]), L(t["logits"])
    tot = 0.0
    for a in range(C):
        for b in range(C):
            es = ref_zs([zs[r][a] - zs[r][b] for r in range(B)])
            et = ref_zs([zt[r][a] - zt[r][b] for r in range(B)])
            tot += sum(abs(u - v) for u, v in zip(es, et))
    assert out["total"].item() == approx(tot / (C * C * B))


def test_angle_none_mse_and_euclidean_l1_kl():
    s, t, _ = make_batch(15)
    out = build_objective([
        {"source": "pooled", "affinity": "angle", "norm": "none", "loss": "mse", "name": "a"},
        {"source": "pooled", "affinity": "euclidean", "norm": "l1", "loss": "kl", "name": "d", "weight": 0.5},
    ])(s, t)
    a_s, a_t = ref_angles(L(s["pooled"])), ref_angles(L(t["pooled"]))
    mse = sum((a_s[i][j][k] - a_t[i][j][k]) ** 2 for i in range(B) for j in range(B) for k in range(B)) / B**3
    assert out["a"].item() == approx(mse)
    ds, dt = ref_pdist(L(s["pooled"])), ref_pdist(L(t["pooled"]))
    ps = [[v / sum(r) for v in r] for r in ds]
    pt = [[v / sum(r) for v in r] for r in dt]
    eps = 1e-7
    kl = sum(pt[i][j] * (math.log(pt[i][j] + eps) - math.log(ps[i][j] + eps)) for i in range(B) for j in range(B) if pt[i][j] > 0) / B
    assert out["d"].item() == approx(0.5 * kl)
    assert out["total"].item() == approx(mse + 0.5 * kl)


@pytest.mark.parametrize("redundant", ["cross-view", "both", "none", "symmetric"])
def test_virtual_relation_redundant_modes(redundant):
    s, t, _ = make_batch(21, rows=2 * B)
    spec = [{"affinity": "virtual-relation", "norm": "zs", "loss": "mse", "redundant": redundant, "name": "v"}]
    out = build_objective(spec)(s, t, batch_size=B)
    l_is, l_ic, _ = ref_vrm_graphs(L(s["logits"]), L(t["logits"]), B, redundant, "none")
    assert out["v/is"].item() == approx(l_is)
    assert out["v/ic"].item() == approx(l_ic)
    assert out["total"].item() == approx(l_is + l_ic)


@pytest.mark.parametrize("redundant", ["cross-view", "both"])
def test_virtual_relation_two_views_weighted(redundant):
    b = 4
    s, t, _ = make_batch(22, rows=3 * b)
    spec = [{"affinity": "virtual-relation(views=2,is_weight=0.5,ic_weight=2.0)", "norm": "zs", "loss": "mse",
             "redundant": redundant, "weight": 3.0, "name": "v"}]
    obj = build_objective(spec)
    assert obj.views == 2
    out = obj(s, t, batch_size=b)
    l_is, l_ic, _ = ref_vrm_graphs(L(s["logits"]), L(t["logits"]), b, redundant, "none")
    assert out["v/is"].item() == approx(3.0 * 0.5 * l_is)
    assert out["v/ic"].item() == approx(3.0 * 2.0 * l_ic)
    assert out["total"].item() == approx(3.0 * (0.5 * l_is + 2.0 * l_ic))


@pytest.mark.parametrize("redundant", ["none", "symmetric"])
def test_joint_entropy_quantile_one_keeps_every_pair(redundant):
    """q = 1: the threshold is the largest H_i + H_j (i ≠ j), and only pairs *exceeding* it are dropped."""
    s, t, _ = make_batch(24, rows=2 * B)
    base = [{"affinity": "virtual-relation", "norm": "zs", "loss": "mse", "redundant": redundant, "name": "v"}]
    pruned = build_objective([dict(base[0], unreliable="joint-entropy", quantile=1.0)])(s, t, batch_size=B)
    plain = build_objective(base)(s, t, batch_size=B)
    l_is, _, _ = ref_vrm_graphs(L(s["logits"]), L(t["logits"]), B, redundant, "joint-entropy", 1.0)
    if redundant == "symmetric":  # the diagonal 2·H_i can exceed the off-diagonal maximum only with redundant='none'
        assert pruned["v/is"].item() == approx(plain["v/is"].item())
    assert pruned["v/is"].item() == approx(l_is)


def _near_duplicate_views(seed, noise):
    """[real; virtual] logits where each virtual view is its real view plus a small perturbation."""
    s, t, _ = make_batch(seed, rows=2 * B)
    g = torch.Generator().manual_seed(seed + 1000)
    for rep in (s, t):
        rep["logits"][B:] = rep["logits"][:B] + noise * torch.randn(B, C, generator=g)
    return s, t


@pytest.mark.parametrize("noise", [0.3, 0.1])
def test_virtual_relation_zs_with_close_views(noise):
    s, t = _near_duplicate_views(30, noise)
    out = build_objective([{"affinity": "virtual-relation", "norm": "zs", "loss": "mse", "redundant": "symmetric", "name": "v"}])(s, t, batch_size=B)
    l_is, l_ic, _ = ref_vrm_graphs(L(s["logits"]), L(t["logits"]), B, "symmetric", "none")
    assert out["v/is"].item() == approx(l_is)
    assert out["v/ic"].item() == approx(l_ic)


@pytest.mark.parametrize("noise", [0.01, 0.003])
def test_virtual_relation_zs_with_near_duplicate_views(noise):
    s, t = _near_duplicate_views(30, noise)
    out = build_objective([{"affinity": "virtual-relation", "norm": "zs", "loss": "mse", "redundant": "symmetric", "name": "v"}])(s, t, batch_size=B)
    l_is, _, _ = ref_vrm_graphs(L(s["logits"]), L(t["logits"]), B, "symmetric", "none")
    assert out["v/is"].item() == approx(l_is)


def test_virtual_relation_joint_entropy_other_quantile():
    s, t, _ = make_batch(23, rows=2 * B)
    spec = [{"affinity": "virtual-relation", "norm": "none", "loss": "mse", "redundant": "both",
             "unreliable": "joint-entropy", "quantile": 0.5, "name": "v"}]
    out = build_objective(spec)(s, t, batch_size=B)
    l_is, l_ic, margin = ref_vrm_graphs(L(s["logits"]), L(t["logits"]), B, "both", "joint-entropy", 0.5, norm="none")
    assert margin > 1e-4
    assert out["v/is"].item() == approx(l_is)
    assert out["v/ic"].item() == approx(l_ic)


# ---------------------------------------------------------------------------------------------
# stored loss-value fixture
# ---------------------------------------------------------------------------------------------
def _load_generator():
    path = FIXTURES / "make_loss_values.py"
    spec = importlib.util.spec_from_file_location("akd_make_loss_values", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_stored_loss_values_unchanged(dtype):
    """The stored float64 values, recomputed in float64 (to FP64_RTOL) and from float32 inputs (to FP32_RTOL).

    Both tolerances are multiples of the dtype's epsilon (see the generator's doc): the fixture must give
    the same verdict on every CPU, kernel set and thread count.
    """
    gen = _load_generator()
    stored = json.loads((FIXTURES / "loss_values.json").read_text())
    assert stored["meta"].get("dtype") == "float64", "the fixture predates the float64 generator: regenerate it"
    rtol = gen.FP64_RTOL if dtype == torch.float64 else gen.FP32_RTOL
    fresh = gen.compute(dtype)
    # the seeded inputs themselves must not have changed (else a failure below says nothing about akd)
    for key, checksum in stored["inputs"].items():
        assert fresh["inputs"][key] == pytest.approx(checksum, rel=gen.FP64_RTOL), f"fixture input {key} changed"
    assert set(fresh["values"]) == set(stored["values"]), "objectives differ from the fixture: regenerate it"
    assert set(stored["values"]) >= set(METHODS.names())
    failures = []
    for obj_name, terms in stored["values"].items():
        assert set(fresh["values"][obj_name]) == set(terms), f"{obj_name}: term names changed"
        for term, value in terms.items():
            got = fresh["values"][obj_name][term]
            if got != pytest.approx(value, rel=rtol, abs=1e-12):
                failures.append(f"{obj_name}[{term}]: stored {value!r}, now {got!r} (rel {abs(got - value) / abs(value):.2g} > {rtol:.2g})")
    assert not failures, "loss values changed:\n" + "\n".join(failures)


def test_stored_values_catch_a_changed_formula(monkeypatch):
    """The fixture's tolerance is tight enough to see a change of 1e-6 in one formula (kd's temperature)."""
    from akd.losses.kd import HintonKD

    gen = _load_generator()
    stored = json.loads((FIXTURES / "loss_values.json").read_text())
    old_init = HintonKD.__init__
    monkeypatch.setattr(HintonKD, "__init__", lambda self, t=4.0, **kw: old_init(self, t=t * (1 + 1e-6), **kw))
    fresh = gen.compute(torch.float64)
    assert fresh["values"]["kd"]["kd"] != pytest.approx(stored["values"]["kd"]["kd"], rel=gen.FP64_RTOL)


def test_stored_loss_values_are_nontrivial():
    stored = json.loads((FIXTURES / "loss_values.json").read_text())
    for name, terms in stored["values"].items():
        assert math.isfinite(terms["total"]) and terms["total"] > 0, name
        relational = [k for k in stored["terms"][name] if k != "ce"]
        assert all(terms[k] > 1e-8 for k in relational), name  # inputs differ: every term is active


def test_stored_values_sum_to_total():
    stored = json.loads((FIXTURES / "loss_values.json").read_text())
    for name, terms in stored["values"].items():
        parts = stored["terms"][name]
        assert sum(terms[p] for p in parts) == pytest.approx(terms["total"], rel=1e-6), name
