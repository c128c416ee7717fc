"""DIST, DKD and KD-LS (logit standardisation) against slow, independently written loop references;
properties of their parts (``pearson``, ``class-identity``, ``dkd``) and of term weight schedules.

The references use plain Python floats (double precision) and explicit loops, written from the papers and
the official code's conventions (DIST: hunto/image_classification_sota ``dist_kd.py``; DKD: mdistiller
``DKD.py``), never by calling akd.  akd is evaluated on float64 inputs (compared at a multiple of float64's
epsilon) and on the same inputs in float32 (a multiple of float32's epsilon).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akd import ConfigError, build_objective
from akd.schedules import SCHEDULES

from conftest import run_cli

EPS64, EPS32 = torch.finfo(torch.float64).eps, torch.finfo(torch.float32).eps
RTOL = {torch.float64: 2.0**16 * EPS64, torch.float32: 2.0**10 * EPS32}  # ≈ 1.5e-11, 1.2e-4
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_batch(seed: int, b: int = 7, c: int = 6, scale: float = 2.0):
    g = torch.Generator().manual_seed(seed)
    zs = torch.randn(b, c, generator=g, dtype=torch.float64) * scale
    zt = torch.randn(b, c, generator=g, dtype=torch.float64) * scale
    y = torch.randint(0, c, (b,), generator=g)
    return zs, zt, y


def evaluate(spec, zs, zt, y, dtype):
    out = build_objective(spec)({"logits": zs.to(dtype)}, {"logits": zt.to(dtype)}, y)
    return {k: float(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# reference formulas (plain Python)
# ---------------------------------------------------------------------------------------------
def softmax(v, t=1.0):
    m = max(a / t for a in v)
    e = [math.exp(a / t - m) for a in v]
    s = sum(e)
    return [x / s for x in e]


def log_softmax(v, t=1.0):
    m = max(a / t for a in v)
    lse = m + math.log(sum(math.exp(a / t - m) for a in v))
    return [a / t - lse for a in v]


def pearson(a, b, eps=1e-8):
    """DIST's correlation: cosine of the mean-centred vectors, eps added to the product of the norms."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    ca, cb = [x - ma for x in a], [x - mb for x in b]
    num = sum(x * y for x, y in zip(ca, cb))
    return num / (math.sqrt(sum(x * x for x in ca)) * math.sqrt(sum(y * y for y in cb)) + eps)


def ref_dist(zs, zt, tau=4.0):
    """(inter, intra), each τ² · mean (1 − ρ): over the class vector of each sample, over each class's batch column."""
    ps = [softmax(r, tau) for r in zs]
    pt = [softmax(r, tau) for r in zt]
    n, c = len(ps), len(ps[0])
    inter = sum(1.0 - pearson(ps[i], pt[i]) for i in range(n)) / n
    intra = sum(1.0 - pearson([ps[i][k] for i in range(n)], [pt[i][k] for i in range(n)]) for k in range(c)) / c
    return tau * tau * inter, tau * tau * intra


def kl(p, q):
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(p, q) if a > 0)


def ref_dkd(zs, zt, y, alpha=1.0, beta=8.0, T=4.0):
    """Zhao et al.: α·TCKD + β·NCKD, T² · (1/B) Σ_i KL; TCKD over [p_gt, 1 − p_gt], NCKD over the non-target classes."""
    n = len(zs)
    tckd = nckd = 0.0
    for i in range(n):
        ps, pt = softmax(zs[i], T), softmax(zt[i], T)
        g = y[i]
        tckd += kl([pt[g], 1.0 - pt[g]], [ps[g], 1.0 - ps[g]])
        rest_s = [ps[k] for k in range(len(ps)) if k != g]
        rest_t = [pt[k] for k in range(len(pt)) if k != g]
        ss, st_ = sum(rest_s), sum(rest_t)
        nckd += kl([x / st_ for x in rest_t], [x / ss for x in rest_s])
    return T * T * (alpha * tckd + beta * nckd) / n


def ref_kd(zs, zt, T):
    n = len(zs)
    return T * T * sum(kl(softmax(zt[i], T), softmax(zs[i], T)) for i in range(n)) / n


def ref_ce(z, y):
    return -sum(log_softmax(z[i])[y[i]] for i in range(len(y))) / len(y)


def zscore(v, eps=1e-7):
    """akd's 'zs': population variance (1/C), eps inside the square root."""
    m = sum(v) / len(v)
    var = sum((x - m) ** 2 for x in v) / len(v)
    return [(x - m) / math.sqrt(var + eps) for x in v]


# ---------------------------------------------------------------------------------------------
# presets vs references
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dist_preset(seed, dtype):
    zs, zt, y = make_batch(seed)
    out = evaluate("dist", zs, zt, y, dtype)
    inter, intra = ref_dist(zs.tolist(), zt.tolist(), tau=4.0)
    ce = ref_ce(zs.tolist(), y.tolist())
    approx = lambda v: pytest.approx(v, rel=RTOL[dtype], abs=RTOL[dtype])  # noqa: E731
    assert out["dist-inter"] == approx(2.0 * inter)
    assert out["dist-intra"] == approx(2.0 * intra)
    assert out["ce"] == approx(ce)
    assert out["total"] == approx(ce + 2.0 * inter + 2.0 * intra)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dkd_preset(seed, dtype):
    zs, zt, y = make_batch(seed, b=9, c=8, scale=3.0)
    out = evaluate("dkd", zs, zt, y, dtype)  # no epoch given: the schedule is not applied (factor 1)
    ref = ref_dkd(zs.tolist(), zt.tolist(), y.tolist(), 1.0, 8.0, 4.0)
    assert out["dkd"] == pytest.approx(ref, rel=RTOL[dtype], abs=RTOL[dtype])
    assert out["ce"] == pytest.approx(ref_ce(zs.tolist(), y.tolist()), rel=RTOL[dtype])


@pytest.mark.parametrize("params", [(1.0, 8.0, 4.0), (0.5, 2.0, 1.0), (0.0, 6.0, 2.0), (2.0, 0.0, 3.0)])
def test_dkd_parameters(params):
    a, b, t = params
    zs, zt, y = make_batch(7, b=5, c=10, scale=4.0)
    out = evaluate([{"loss": f"dkd(alpha={a},beta={b},t={t})"}], zs, zt, y, torch.float64)
    assert out["dkd"] == pytest.approx(ref_dkd(zs.tolist(), zt.tolist(), y.tolist(), a, b, t), rel=RTOL[torch.float64])


def test_dkd_with_confident_logits_stays_finite_and_exact():
    """Logits 60 apart: mdistiller's log(softmax) would reach log 0; akd's log-sum-exp form does not."""
    zs, zt, y = make_batch(3, b=4, c=5)
    zs[:, 0] += 60.0
    zt[:, 0] += 60.0
    y[:] = 0
    s = zs.clone().requires_grad_(True)
    out = build_objective([{"loss": "dkd(t=1.0)"}])({"logits": s}, {"logits": zt}, y)
    out["total"].backward()
    assert math.isfinite(float(out["total"])) and torch.isfinite(s.grad).all()
    ref = ref_dkd(zs.tolist(), zt.tolist(), y.tolist(), 1.0, 8.0, 1.0)
    assert float(out["dkd"]) == pytest.approx(ref, rel=RTOL[torch.float64], abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_kd_ls_preset(dtype):
    zs, zt, y = make_batch(4, b=6, c=10, scale=3.0)
    out = evaluate("kd-ls", zs, zt, y, dtype)
    zzs = [zscore(r) for r in zs.tolist()]
    zzt = [zscore(r) for r in zt.tolist()]
    assert out["kd-ls"] == pytest.approx(9.0 * ref_kd(zzs, zzt, 2.0), rel=RTOL[dtype])
    assert out["ce"] == pytest.approx(0.1 * ref_ce(zs.tolist(), y.tolist()), rel=RTOL[dtype])


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------
logits = st.integers(0, 2**31 - 1)


@SETTINGS
@given(seed=logits, b=st.integers(2, 8), c=st.integers(2, 8), a=st.floats(0.1, 10.0), shift=st.floats(-5.0, 5.0))
def test_pearson_invariant_to_positive_affine_maps_of_rows(seed, b, c, a, shift):
    zs, zt, _ = make_batch(seed, b, c)
    loss = build_objective([{"affinity": "identity", "norm": "none", "loss": "pearson(eps=0.0)"}])  # the exact ρ
    base = float(loss({"logits": zs}, {"logits": zt})["total"])
    moved = float(loss({"logits": a * zs + shift}, {"logits": zt})["total"])
    assert moved == pytest.approx(base, rel=2.0**16 * EPS64, abs=2.0**16 * EPS64)
    assert -4 * EPS64 <= base <= 2.0 + 4 * EPS64  # 1 − ρ ∈ [0, 2] up to rounding


@SETTINGS
@given(seed=logits, b=st.integers(2, 8), c=st.integers(2, 8))
def test_dist_zero_for_identical_and_maximal_for_mirrored_rows(seed, b, c):
    zs, _, y = make_batch(seed, b, c)
    obj = build_objective([{"affinity": "identity", "norm": "none", "loss": "pearson(scale=3.0)"}])
    # identical rows: 1 − ρ = eps / (‖c‖² + eps) with eps = 1e-8, ‖c‖ the centred row's norm
    c2 = (zs - zs.mean(dim=-1, keepdim=True)).pow(2).sum(dim=-1)
    assert float(obj({"logits": zs}, {"logits": zs.clone()})["total"]) == pytest.approx(3.0 * float((1e-8 / (c2 + 1e-8)).mean()), rel=1e-6)
    # a mirrored row (ρ = −1) is the largest distance, 2 · scale (exactly so without eps)
    exact = build_objective([{"affinity": "identity", "norm": "none", "loss": "pearson(scale=3.0,eps=0.0)"}])
    assert float(exact({"logits": zs}, {"logits": -zs})["total"]) == pytest.approx(6.0, rel=2.0**16 * EPS64)


@SETTINGS
@given(seed=logits, b=st.integers(2, 8), c=st.integers(2, 8))
def test_dist_equivariances(seed, b, c):
    """Relabelling the classes changes neither relation; reordering the batch changes neither (the intra-class
    relation reads each class's column as a whole, the inter-class one averages over samples)."""
    zs, zt, y = make_batch(seed, b, c)
    ref = evaluate("dist", zs, zt, y, torch.float64)
    g = torch.Generator().manual_seed(seed % 1000)
    pc, pb = torch.randperm(c, generator=g), torch.randperm(b, generator=g)
    by_class = evaluate("dist", zs[:, pc], zt[:, pc], y, torch.float64)
    by_batch = evaluate("dist", zs[pb], zt[pb], y[pb], torch.float64)
    for k in ("dist-inter", "dist-intra"):
        assert by_class[k] == pytest.approx(ref[k], rel=1e-9, abs=1e-12)
        assert by_batch[k] == pytest.approx(ref[k], rel=1e-9, abs=1e-12)


@SETTINGS
@given(seed=logits, c=st.integers(2, 12), t=st.floats(0.5, 8.0))
def test_kd_decomposes_into_tckd_and_weighted_nckd(seed, c, t):
    """Zhao et al., Eq. (1)-(2): per sample, KD = TCKD + (1 − p^t_gt) · NCKD."""
    zs, zt, y = make_batch(seed, 1, c, scale=3.0)
    pt_gt = float(torch.softmax(zt[0] / t, dim=-1)[y[0]])
    dkd = evaluate([{"loss": f"dkd(alpha=1.0,beta={1.0 - pt_gt!r},t={t!r})"}], zs, zt, y, torch.float64)["dkd"]
    kd = evaluate([{"loss": f"kd(t={t!r})"}], zs, zt, y, torch.float64)["kd"]
    assert dkd == pytest.approx(kd, rel=1e-9, abs=1e-12)


@SETTINGS
@given(seed=logits, b=st.integers(1, 6), c=st.integers(2, 9))
def test_dkd_nonnegative_and_zero_for_identical_logits(seed, b, c):
    zs, zt, y = make_batch(seed, b, c)
    obj = build_objective([{"loss": "dkd"}])
    assert float(obj({"logits": zs}, {"logits": zt}, y)["total"]) >= 0.0
    assert abs(float(obj({"logits": zs}, {"logits": zs.clone()}, y)["total"])) <= 1e-12


def test_class_identity_is_the_transpose():
    zs, zt, _ = make_batch(5, 4, 3)
    from akd import AFFINITIES

    assert torch.equal(AFFINITIES.build("class-identity")(zs), zs.t())
    assert AFFINITIES.build("identity-t").kind == "instance"


# ---------------------------------------------------------------------------------------------
# weight schedules
# ---------------------------------------------------------------------------------------------
def test_linear_warmup_matches_mdistiller_factor():
    """mdistiller: min(epoch / WARMUP, 1) with 1-based epochs; akd's engine epochs are 0-based."""
    s = SCHEDULES.build("linear-warmup(epochs=20)")
    assert [s(e) for e in range(25)] == [min((e + 1) / 20, 1.0) for e in range(25)]


@pytest.mark.parametrize("milestones,gamma", [([3], 0.1), ([2, 5], 0.5), ([1, 2, 3], 0.0)])
def test_step_schedule_matches_multistep_lr(milestones, gamma):
    """Same convention as the learning-rate milestones: the factor torch's MultiStepLR applies in epoch e."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    lr = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=gamma)
    factors = []
    for _ in range(8):
        factors.append(opt.param_groups[0]["lr"])
        opt.step()
        lr.step()
    s = SCHEDULES.build({"name": "step", "milestones": milestones, "gamma": gamma})
    assert [s(e) for e in range(8)] == pytest.approx(factors, rel=1e-12, abs=0)


def test_set_epoch_scales_the_weighted_term_only():
    zs, zt, y = make_batch(0)
    obj = build_objective("dkd")
    full = {k: float(v) for k, v in obj({"logits": zs}, {"logits": zt}, y).items()}
    obj.set_epoch(4)  # factor 5/20
    part = {k: float(v) for k, v in obj({"logits": zs}, {"logits": zt}, y).items()}
    assert part["ce"] == full["ce"]
    assert part["dkd"] == pytest.approx(full["dkd"] * 5 / 20, rel=1e-15)
    assert part["total"] == pytest.approx(part["ce"] + part["dkd"], rel=1e-15)
    assert obj.describe()[1]["schedule"] == "linear-warmup(epochs=20)"
    assert "schedule" not in obj.describe()[0]  # constant: not written


@pytest.mark.parametrize("schedule,match", [
    ("warmpu", r"unknown schedule 'warmpu' \(did you mean 'warmup'\?\); valid choices: constant, linear-warmup"),
    ("linear-warmup(epochs=0)", "linear-warmup: epochs=0 must be >= 1"),
    ("linear-warmup(epochs=2.5)", "parameter epochs=2.5 is not int"),
    ("step", r"step: give milestones=\[e1, e2, ...\]"),
    ("step(milestones=[5,3])", "must be increasing"),
    ("step(milestones=[2],gamma=-1)", "gamma=-1.0 must be >= 0"),
    (3, "schedule spec must be a name"),
])
def test_bad_schedule_is_one_line_build_error(schedule, match):
    with pytest.raises(ConfigError, match=match) as e:
        build_objective([{"loss": "ce"}, {"loss": "kd", "schedule": schedule}])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("term,match", [
    ({"loss": "kd", "pre": "softmax"}, "'kd' reads logits; pre 'softmax' does not produce logits"),
    ({"loss": "dkd", "affinity": "class-identity"}, "instance term on raw logits"),
    ({"loss": "pearson", "affinity": "class-identity", "redundant": "symmetric"}, "edge pruning needs a pairwise graph"),
    ({"loss": "dkd(beta=-1)"}, "dkd: beta=-1.0 must be >= 0"),
    ({"loss": "pearson(scale=0)", "affinity": "identity"}, "pearson: scale=0.0 must be > 0"),
])
def test_bad_baseline_terms_are_refused(term, match):
    with pytest.raises(ConfigError, match=match):
        build_objective([term])


# ---------------------------------------------------------------------------------------------
# the engine applies schedules per epoch, resumably
# ---------------------------------------------------------------------------------------------
SYN = "synthetic(n=128,test_n=32,classes=4,size=16,channels=1,seed=3)"


def _cfg(terms, epochs=2):
    from akd.engine import RunConfig

    return RunConfig(dataset=SYN, student="cnn_tiny", teacher="cnn_small", epochs=epochs, teacher_epochs=1,
                     batch_size=32, log_every=1000, objective={"terms": terms, "name": "sched"})


def test_engine_applies_the_schedule_each_epoch(tmp_path):
    from akd.engine import train

    terms = [{"loss": "ce"}, {"loss": "dkd(beta=2.0)", "schedule": "step(milestones=[1],gamma=0.0)"}]
    s = train(_cfg(terms), tmp_path / "r", progress=False)
    rec = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert rec[0]["train"]["dkd"] > 0 and rec[1]["train"]["dkd"] == 0.0  # switched off from the 2nd epoch
    assert s["objective"][1]["schedule"] == "step(milestones=[1],gamma=0.0)"
    stored = json.loads((tmp_path / "r" / "config.json").read_text())
    assert "step(milestones=[1],gamma=0.0)" in json.dumps(stored)


def test_scheduled_run_resumes_exactly(tmp_path):
    from akd.engine import train
    from akd.engine.checkpoint import load_checkpoint
    from akd.engine.trainer import RunInterrupted

    c = _cfg([{"loss": "ce"}, {"loss": "dkd", "schedule": "linear-warmup(epochs=3)"}], epochs=2)
    ref = train(c, tmp_path / "ref", progress=False)
    with pytest.raises(RunInterrupted):
        train(c, tmp_path / "cut", progress=False, stop_after_steps=5)  # 4 steps per epoch: stops in epoch 2
    res = train(c, tmp_path / "cut", progress=False, resume=True)
    wa = load_checkpoint(tmp_path / "ref" / "model.pt")["state_dict"]
    wb = load_checkpoint(tmp_path / "cut" / "model.pt")["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert ref["last_acc"] == res["last_acc"]
    ma = (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
    mb = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["train"] for x in ma] == [json.loads(x)["train"] for x in mb]


def test_cli_bad_schedule_in_config_is_exit_2(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'dataset = "{SYN}"\nstudent = "cnn_tiny"\nteacher = "cnn_small"\nepochs = 1\n'
                   '[[terms]]\nloss = "ce"\n[[terms]]\nloss = "dkd"\nschedule = "linear-warmup(epochs=-2)"\n')
    code, out, err = run_cli("run", "--config", str(cfg), "--out", str(tmp_path / "r"), "--quiet")
    assert code == 2
    assert err.strip() == f"error: {cfg}: linear-warmup: epochs=-2 must be >= 1"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("method", ["dist", "dkd", "kd-ls"])
def test_one_epoch_of_each_baseline(tmp_path, method):
    from akd.engine import RunConfig, train

    c = RunConfig(dataset=SYN, student="cnn_tiny", teacher="cnn_small", epochs=1, teacher_epochs=1, batch_size=32,
                  log_every=1000, objective=method)
    s = train(c, tmp_path / method, progress=False)
    assert s["status"] == "finished"
    rec = json.loads((tmp_path / method / "metrics.jsonl").read_text().splitlines()[0])
    assert all(math.isfinite(rec["train"][t["name"]]) for t in s["objective"])
