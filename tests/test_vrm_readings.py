"""VRM's readings (issue: VRM as the paper describes it) against slow plain-Python loop references.

The references below never call akd: z-scored logits, L2-normalised edge vectors, the redundant masks,
the discrepancy / threshold rules and the per-edge losses are written out with loops over i, j (and a, b).
akd evaluates these edge graphs in closed form from float64 Gram matrices; the comparisons run in float64
(tolerance 1e-9) and from float32 inputs (1e-5), so they hold on every CPU and kernel set.
"""

from __future__ import annotations

import math

import pytest
import torch

from akd import build_objective
from akd.affinity import edge_gram
from test_objective_values import ref_keep_class, ref_keep_sample, ref_quantile, ref_zs

B, C = 5, 6  # real images, classes; 1 virtual view: N = 10 nodes


def batch(seed: int, dtype=torch.float64, rows: int = 2 * B):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(rows, C, generator=g, dtype=torch.float64) * 2.0
    t = torch.randn(rows, C, generator=g, dtype=torch.float64) * 2.0
    y = torch.randint(0, C, (B,), generator=g)
    return s.to(dtype), t.to(dtype), y


def ref_l2(v, eps=1e-12):
    n = math.sqrt(sum(a * a for a in v))
    return [a / max(n, eps) for a in v]


def huber(d, beta):
    return 0.5 * d * d / beta if d < beta else d - 0.5 * beta


def ref_graph_edges(zs, zt, batch_size, redundant, pre_zs=True):
    """{(kind, i, j): (student edge, teacher edge)} of the kept (redundant rule) edges; edges L2-normalised."""
    if pre_zs:
        zs, zt = [ref_zs(r) for r in zs], [ref_zs(r) for r in zt]
    n, c = len(zs), len(zs[0])
    out = {}
    for i in range(n):
        for j in range(n):
            if ref_keep_sample(i, j, batch_size, redundant):
                out["is", i, j] = (ref_l2([zs[i][k] - zs[j][k] for k in range(c)]), ref_l2([zt[i][k] - zt[j][k] for k in range(c)]))
    for a in range(c):
        for b in range(c):
            if ref_keep_class(a, b, redundant):
                out["ic", a, b] = (ref_l2([zs[r][a] - zs[r][b] for r in range(n)]), ref_l2([zt[r][a] - zt[r][b] for r in range(n)]))
    return out


def ref_dist(es, et):
    return math.sqrt(sum((u - v) ** 2 for u, v in zip(es, et)))


def ref_loss(edges, kind, dim, reduction="edge", loss="mse", beta=1.0, keep=lambda key: True):
    vals = []
    for key, (es, et) in edges.items():
        if key[0] != kind or not keep(key):
            continue
        d = ref_dist(es, et)
        vals.append(huber(d, beta) if loss == "huber" else d * d / (1 if reduction == "edge" else dim))
    return sum(vals) / max(len(vals), 1)


def term(**kw):
    t = {"name": "v", "source": "logits", "pre": "zs", "affinity": "virtual-relation(views=1)", "norm": "l2",
         "loss": "mse(reduction='edge')", "redundant": "both"}
    t.update(kw)
    return build_objective([t])


def run(obj, s, t):
    return obj({"logits": s}, {"logits": t}, None, batch_size=B)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-9), (torch.float32, 1e-5)], ids=["float64", "float32"])
@pytest.mark.parametrize("reduction", ["edge", "element"])
@pytest.mark.parametrize("redundant", ["both", "symmetric"])
def test_zs_logits_l2_edges_mse_both_graphs(dtype, tol, reduction, redundant):
    s, t, _ = batch(1, dtype)
    out = run(term(loss=f"mse(reduction='{reduction}')", redundant=redundant), s, t)
    edges = ref_graph_edges(s.double().tolist(), t.double().tolist(), B, redundant)
    assert out["v/is"].item() == pytest.approx(ref_loss(edges, "is", C, reduction), rel=tol)
    assert out["v/ic"].item() == pytest.approx(ref_loss(edges, "ic", 2 * B, reduction), rel=tol)
    # 'both' keeps the real<->virtual edges once each: B·B of them, the same-image edges (i, i+B) included
    if redundant == "both":
        assert sum(1 for k in edges if k[0] == "is") == B * B and ("is", 0, B) in edges


def test_the_new_preset_is_this_reading():
    s, t, y = batch(2)
    out = build_objective("vrm")({"logits": s}, {"logits": t}, y, batch_size=B)
    edges = ref_graph_edges(s.tolist(), t.tolist(), B, "both")
    assert out["vrm/is"].item() == pytest.approx(ref_loss(edges, "is", C), rel=1e-9)
    assert out["vrm/ic"].item() == pytest.approx(ref_loss(edges, "ic", 2 * B), rel=1e-9)
    old = build_objective("vrm-zs-edge").describe()[1]
    assert old["norm"] == "zs" and old["redundant"] == "symmetric" and old["unreliable"] == "joint-entropy"


@pytest.mark.parametrize("q", [0.55, 0.8])  # not on an element (M = 25 and 15 candidate edges)
@pytest.mark.parametrize("graphs", ["sample", "all"])
def test_discrepancy_keeps_exactly_the_edges_at_or_below_the_quantile(q, graphs):
    s, t, _ = batch(3)
    edges = ref_graph_edges(s.tolist(), t.tolist(), B, "both")
    thr = {kind: ref_quantile([ref_dist(*v) for k, v in edges.items() if k[0] == kind and k[1] != k[2]], q) for kind in ("is", "ic")}
    margin = min(abs(ref_dist(*v) - thr[k[0]]) for k, v in edges.items())
    assert margin > 1e-9  # the fixed inputs are not borderline
    pruned_kinds = {"is", "ic"} if graphs == "all" else {"is"}

    def keep(key):
        return key[0] not in pruned_kinds or ref_dist(*edges[key]) <= thr[key[0]]

    s_var = s.clone().requires_grad_(True)
    out = run(term(unreliable="discrepancy", quantile=q, unreliable_graphs=graphs), s_var, t)
    assert out["v/is"].item() == pytest.approx(ref_loss(edges, "is", C, keep=keep), rel=1e-9)
    assert out["v/ic"].item() == pytest.approx(ref_loss(edges, "ic", 2 * B, keep=keep), rel=1e-9)


def test_discrepancy_gives_pruned_edges_zero_gradient():
    """Node pairs (i, j) whose only edges are pruned get no gradient through those edges: the gradient of the
    inter-sample value equals the gradient of the value restricted to the kept edges (computed by masking)."""
    s, t, _ = batch(4)
    obj = term(unreliable="discrepancy", quantile=0.55, affinity="virtual-relation(views=1,ic_weight=0.0)")
    s1 = s.clone().requires_grad_(True)
    run(obj, s1, t)["total"].backward()
    edges = ref_graph_edges(s.tolist(), t.tolist(), B, "both")
    thr = ref_quantile([ref_dist(*v) for k, v in edges.items() if k[0] == "is"], 0.55)
    kept = [(i, j) for (kind, i, j), v in edges.items() if kind == "is" and ref_dist(*v) <= thr]
    assert 0 < len(kept) < B * B
    # the same loss over only the kept pairs, by hand in torch: gradients must agree
    s2 = s.clone().requires_grad_(True)
    zs, zt = (s2 - s2.mean(1, keepdim=True)) / (s2.var(1, unbiased=False, keepdim=True) + 1e-7).sqrt(), None
    zt = (t - t.mean(1, keepdim=True)) / (t.var(1, unbiased=False, keepdim=True) + 1e-7).sqrt()
    tot = sum(((zs[i] - zs[j]) / (zs[i] - zs[j]).norm() - (zt[i] - zt[j]) / (zt[i] - zt[j]).norm()).pow(2).sum() for i, j in kept)
    (tot / len(kept)).backward()
    assert torch.allclose(s1.grad, s2.grad, rtol=1e-7, atol=1e-10)


def test_quantile_one_equals_no_pruning():
    s, t, _ = batch(5)
    a = run(term(unreliable="discrepancy", quantile=1.0, unreliable_graphs="all"), s, t)
    b = run(term(), s, t)
    assert a["total"].item() == b["total"].item()


@pytest.mark.parametrize("beta", [0.3, 1.0])
def test_edge_huber_and_truncated_huber(beta):
    s, t, _ = batch(6)
    edges = ref_graph_edges(s.tolist(), t.tolist(), B, "both")
    out = run(term(loss=f"edge-huber(beta={beta})"), s, t)
    assert out["v/is"].item() == pytest.approx(ref_loss(edges, "is", C, loss="huber", beta=beta), rel=1e-9)
    delta = 0.8
    out = run(term(loss=f"edge-huber(beta={beta})", unreliable="threshold", delta=delta), s, t)

    def keep(key):
        return key[0] != "is" or ref_dist(*edges[key]) <= delta

    assert out["v/is"].item() == pytest.approx(ref_loss(edges, "is", C, loss="huber", beta=beta, keep=keep), rel=1e-9)
    assert out["v/ic"].item() == pytest.approx(ref_loss(edges, "ic", 2 * B, loss="huber", beta=beta), rel=1e-9)


@pytest.mark.parametrize("loss", ["mse(reduction='edge')", "mse", "edge-huber(beta=0.5)"])
@pytest.mark.parametrize("unreliable", ["none", "discrepancy"])
def test_closed_form_equals_materialised(loss, unreliable):
    s, t, _ = batch(7)
    obj = term(loss=loss, unreliable=unreliable, quantile=0.7)
    closed = run(obj, s.clone().requires_grad_(True), t)
    old = edge_gram.set_enabled(False)
    try:
        s2 = s.clone().requires_grad_(True)
        mat = run(obj, s2, t)
    finally:
        edge_gram.set_enabled(old)
    for k in ("v/is", "v/ic", "total"):
        assert closed[k].item() == pytest.approx(mat[k].item(), rel=1e-9), k


def test_edge_huber_memory_stays_quadratic_at_b256_c1000():
    """B = 256, C = 1000 (512 nodes): the closed form needs 512² fp64 matrices, not the [512, 512, 1000] graph."""
    g = torch.Generator().manual_seed(0)
    s = torch.randn(512, 1000, generator=g, requires_grad=True)
    t = torch.randn(512, 1000, generator=g)
    obj = term(loss="edge-huber(beta=1.0)", unreliable="discrepancy", quantile=0.9)
    sub = obj.terms[0]
    graphs = sub.affinity.graphs(s, __import__("akd").affinity.Nodes(256, 1))
    assert all(gr.rel is None for gr in graphs) and edge_gram.supports(sub.norm, sub.loss)
    out = obj({"logits": s}, {"logits": t}, None, batch_size=256)
    out["total"].backward()
    assert torch.isfinite(s.grad).all()


@pytest.mark.parametrize("spec, needle", [
    ({"unreliable": "discrepancy", "affinity": "gram", "loss": "mse", "pre": "none", "redundant": "symmetric"}, "has no edge vectors"),
    ({"loss": "edge-huber", "affinity": "gram", "pre": "none", "redundant": "none"}, "compares whole edge vectors"),
    ({"loss": "mse(reduction='edge')", "affinity": "cosine", "pre": "none", "redundant": "none"}, "compares whole edge vectors"),
    ({"unreliable": "joint-entropy", "unreliable_graphs": "all"}, "prunes inter-sample graphs only"),
    ({"unreliable": "threshold", "delta": 0}, "delta=0 must be a finite number > 0"),
    ({"unreliable_graphs": "some"}, "unknown unreliable_graphs 'some'"),
    ({"unreliable": "discrepancy", "affinity": "class-edge", "redundant": "symmetric"}, "unreliable_graphs='all'"),
])
def test_invalid_readings_are_one_line_errors(spec, needle):
    from akd.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        term(**spec)
    assert needle in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# virtual views: RandAugment strength and pool, the view's base image, CE on the virtual view
# ---------------------------------------------------------------------------------------------
def test_ce_on_the_virtual_view_is_ce_over_every_row():
    import torch.nn.functional as F

    s, t, y = batch(8)
    obj = build_objective([{"loss": "ce(virtual=True)"}, {"affinity": "virtual-relation", "pre": "zs", "norm": "l2", "loss": "mse"}])
    out = obj({"logits": s}, {"logits": t}, y, batch_size=B)
    assert out["ce"].item() == pytest.approx(F.cross_entropy(s, torch.cat([y, y])).item(), rel=1e-12)
    plain = build_objective([{"loss": "ce"}])({"logits": s}, None, y, batch_size=B)
    assert plain["ce"].item() == pytest.approx(F.cross_entropy(s[:B], y).item(), rel=1e-12)


def test_view_settings_reach_the_run_and_split_shared_groups(tmp_path, monkeypatch):
    from conftest import run_cli
    from akd.engine import RunConfig
    from akd.experiment import share_key

    monkeypatch.chdir(tmp_path)
    common = ["--dataset", "synthetic(n=64,test_n=32,classes=4,size=16,channels=1)", "--student", "cnn_tiny", "--teacher",
              "cnn_small", "--epochs", "1", "--batch-size", "32", "--quiet"]
    code, _, err = run_cli("run", "--method", "vrm", *common, "--ra-pool", "rotate,blur", "--check")
    assert code == 2 and "--ra-pool 'rotate,blur'" in err and "first bad: blur" in err
    code, _, err = run_cli("run", "--method", "vrm", *common, "--ra-pool", "rotate,brightness", "--ra-ops", "1",
                           "--ra-magnitude", "5", "--view-base", "original", "--out", "runs/v")
    assert code == 0, err
    import json

    cfg = json.loads((tmp_path / "runs/v/config.json").read_text())["config"]
    assert (cfg["ra_pool"], cfg["ra_ops"], cfg["ra_magnitude"], cfg["view_base"]) == (["rotate", "brightness"], 1, 5, "original")
    base = RunConfig()
    assert share_key(base) != share_key(RunConfig(view_base="original"))
    assert share_key(base) != share_key(RunConfig(ra_pool=["rotate"]))


def test_views_of_the_original_image_ignore_the_crop():
    """view_base='original' augments the stored image: the same view whatever crop/flip the real view had."""
    from akd.data import DeviceLoader
    from akd.engine import RunConfig
    from akd.engine.loop import virtual_views

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (8, 1, 12, 12), generator=g, dtype=torch.uint8)
    loader = DeviceLoader(x, torch.zeros(8, dtype=torch.long), 4, augment=True, seed=3)
    cfg = RunConfig(ra_pool=["rotate"], ra_ops=1)
    (xb, _, info), = list(loader.raw_batches(0, with_info=True))[:1]
    orig = loader.originals(info.index)
    assert torch.equal(orig, x[info.index]) and not torch.equal(orig, xb)
    v1 = virtual_views(orig, 1, cfg, 0, 0, 0)[0]
    v2 = virtual_views(x[info.index].clone(), 1, cfg, 0, 0, 0)[0]
    assert torch.equal(v1, v2)


def test_a_preset_that_changed_makes_older_runs_another_config(tmp_path):
    """A run folder trained with 'vrm' before its definition changed is not read back as today's 'vrm'."""
    from akd.engine import RunConfig, train
    from akd.engine.runs import RunDir

    cfg = RunConfig(dataset="synthetic(n=64,test_n=32,classes=4,size=16,channels=1)", student="cnn_tiny", epochs=1,
                    batch_size=32, objective="ce")
    train(cfg, tmp_path / "r", progress=False)
    rd = RunDir(tmp_path / "r")
    assert rd.holds(cfg)
    import json

    stored = json.loads(rd.config.read_text())
    stored["objective_terms"][0]["loss"] = "ce(label_smoothing=0.1)"  # what 'ce' resolved to "before"
    rd.config.write_text(json.dumps(stored))
    assert not rd.holds(cfg)
    del stored["objective_terms"]  # an older folder: the summary's resolved objective decides
    rd.config.write_text(json.dumps(stored))
    assert rd.holds(cfg)
    summary = json.loads(rd.summary.read_text())
    summary["objective"][0]["loss"] = "ce(label_smoothing=0.1)"
    rd.summary.write_text(json.dumps(summary))
    assert not rd.holds(cfg)
