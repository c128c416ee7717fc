"""build_objective: every refused spec raises ConfigError with a telling message; accepted spec forms round-trip."""

from __future__ import annotations

import pytest
import torch

from akd import METHODS, ConfigError, Objective, build_objective

EDGE = {"affinity": "edge", "norm": "zs", "loss": "mse"}


def term(**kw):
    return [dict(kw)]


# ---------------------------------------------------------------------------------------------
# unknown names and keys
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,pattern", [
    ("rkdd", r"unknown method 'rkdd' \(did you mean 'rkd'\?\); valid choices: cc, ce, dist, dkd, kd, kd-ls, pkt, rkd, sp, vrm, vrm-zs-edge"),
    ({"method": "vrn"}, r"unknown method 'vrn' \(did you mean 'vrm'\?\)"),
    ("kd(t=4)", r"method 'kd' has no parameter 't'"),
    (term(affinity="gausian", loss="mse"), r"unknown affinity 'gausian' \(did you mean 'gaussian'\?\); valid choices: .*rbf"),
    (term(affinity="cosin", loss="mse"), r"unknown affinity 'cosin' \(did you mean 'cosine'\?\)"),
    (term(affinity="gram", norm="zss", loss="mse"), r"unknown normalization 'zss' \(did you mean 'zs'\?\)"),
    (term(affinity="gram", norm="l2", loss="msee"), r"unknown loss 'msee' \(did you mean 'mse'\?\); valid choices: .*smooth-l1"),
    ("gram/l2/msee", r"unknown loss 'msee'"),
    ("gram/l3/mse", r"unknown normalization 'l3' \(did you mean 'l2'\?\)"),
    (("grm", "l2", "mse"), r"unknown affinity 'grm' \(did you mean 'gram'\?\)"),
    (term(affinity="gram", loss="mse", wieght=2), r"term 0: unknown key 'wieght' \(did you mean 'weight'\?\); valid keys: .*weight"),
    ([{"loss": "ce"}, dict(EDGE, sorce="pooled")], r"term 1: unknown key 'sorce' \(did you mean 'source'\?\)"),
    ([dict(EDGE, name="rel", normm="zs")], r"term 0 \('rel'\): unknown key 'normm' \(did you mean 'norm'\?\)"),
    (term(affinity="gram", loss="mse", source="pooledd"), r"unknown representation 'pooledd' \(did you mean 'pooled'\?\); valid choices: logits, map, pooled"),
    (dict(EDGE, redundant="symetric"), r"unknown redundant-edge pruning 'symetric' \(did you mean 'symmetric'\?\)"),
    (dict(EDGE, unreliable="entropy"), r"unknown unreliable-edge pruning 'entropy' \(did you mean 'joint-entropy'\?\)"),
    ({"method": "rkd", "extra": 1}, r"objective: unknown key 'extra'; valid keys: terms, method, name"),
    (term(affinity="rbf(gama=1)", loss="mse"), r"affinity 'rbf' has no parameter 'gama' \(did you mean 'gamma'\?\)"),
    (term(affinity="gram", norm="softmax(t=abc)", loss="kl"), r"t='abc' is not float"),
])
def test_unknown_names_and_keys(spec, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_objective(spec)


@pytest.mark.parametrize("spec,pattern", [
    (term(affinity="gram"), r"term 0: a term needs a 'loss' \(one of ce, cosine, .*mse"),
    (term(loss="mse"), r"term 0: a relational term needs an 'affinity' \(one of angle, .*virtual-relation\)"),
    (5, r"cannot build an objective from 5"),
    ([5], r"each term must be a table/dict, got 5"),
    ({"terms": "gram/l2/mse"}, r"'terms' must be a list of term tables"),
])
def test_malformed_specs(spec, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_objective(spec)


# ---------------------------------------------------------------------------------------------
# refused combinations
# ---------------------------------------------------------------------------------------------
KL_REFUSED = [(a, n) for a in ["euclidean", "gram", "cosine(shift=True)", "edge"] for n in ["none", "zs", "l2", "mean"]
              if not (n == "mean" and a in ("gram", "edge"))]  # those are refused earlier (mean on a signed affinity)


@pytest.mark.parametrize("aff,norm", KL_REFUSED)
def test_kl_needs_probability_rows(aff, norm):
    with pytest.raises(ConfigError, match=rf"'kl' compares probability rows; '{norm}' does not produce them"):
        build_objective([{"affinity": aff, "norm": norm, "loss": "kl"}])


@pytest.mark.parametrize("aff", ["euclidean", "cosine(shift=True)", "rbf", "gram", "edge"])
def test_kl_after_softmax_or_l1(aff):
    assert build_objective([{"affinity": aff, "norm": "softmax", "loss": "kl"}]).describe()[0]["norm"] == "softmax"
    if aff in ("euclidean", "cosine(shift=True)", "rbf"):
        assert build_objective([{"affinity": aff, "norm": "l1", "loss": "kl"}]).describe()[0]["norm"] == "l1"


@pytest.mark.parametrize("norm", ["l1", "mean"])
@pytest.mark.parametrize("aff", ["gram", "edge", "cosine", "class-edge", "angle", "identity", "virtual-relation", "rbf(order=1)"])
def test_nonnegative_normalisations_refuse_signed_affinities(aff, norm):
    name = aff.split("(")[0]
    with pytest.raises(ConfigError, match=rf"normalisation '{norm}' needs non-negative relations but '{name}' can be negative"):
        build_objective([{"affinity": aff, "norm": norm, "loss": "mse"}])


@pytest.mark.parametrize("aff", ["euclidean", "rbf", "rbf(order=None)", "rbf(order=4)", "cosine(shift=True)"])
@pytest.mark.parametrize("norm", ["l1", "mean"])
def test_nonnegative_normalisations_accept_nonnegative_affinities(aff, norm):
    obj = build_objective([{"affinity": aff, "norm": norm, "loss": "mse"}])
    assert obj.terms[0].affinity.nonnegative and obj.describe()[0]["norm"] == norm


@pytest.mark.parametrize("loss", ["ce", "kd", "kd(t=2)"])
@pytest.mark.parametrize("aff", ["gram", "edge", "virtual-relation", "euclidean"])
def test_instance_losses_refuse_relational_affinities(loss, aff):
    with pytest.raises(ConfigError, match=r"is an instance term on raw logits; use affinity 'identity' and norm 'none'"):
        build_objective([{"affinity": aff, "loss": loss}])


@pytest.mark.parametrize("extra,pattern", [
    ({"norm": "softmax"}, r"instance term on raw logits"),
    ({"pre": "softmax"}, r"does not produce logits"),  # pre = zs is allowed (logit standardisation, kd-ls)
    ({"source": "pooled"}, r"'kd' reads logits, not 'pooled'"),
])
def test_instance_loss_other_refusals(extra, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_objective([dict({"loss": "kd"}, **extra)])


@pytest.mark.parametrize("redundant", ["cross-view", "both"])
@pytest.mark.parametrize("aff", ["virtual-relation(views=0)", "edge", "euclidean", "class-edge"])
def test_cross_view_pruning_needs_views(aff, redundant):
    with pytest.raises(ConfigError, match=rf"redundant='{redundant}' keeps only real-virtual edges but the affinity reads no virtual views"):
        build_objective([{"affinity": aff, "norm": "none", "loss": "mse", "redundant": redundant}])


@pytest.mark.parametrize("aff", ["identity", "angle"])
@pytest.mark.parametrize("prune", [{"redundant": "symmetric"}, {"unreliable": "joint-entropy"}])
def test_pruning_needs_pairwise_graph(aff, prune):
    name = aff.split("(")[0]
    with pytest.raises(ConfigError, match=rf"edge pruning needs a pairwise graph; '{name}' has none"):
        build_objective([dict({"affinity": aff, "norm": "none", "loss": "mse"}, **prune)])


def test_unreliable_pruning_needs_sample_graph():
    with pytest.raises(ConfigError, match=r"unreliable='joint-entropy' applies to inter-sample graphs only"):
        build_objective([{"affinity": "class-edge", "norm": "zs", "loss": "mse", "unreliable": "joint-entropy"}])
    with pytest.raises(ConfigError, match=r"applies to inter-sample graphs only"):
        build_objective([{"affinity": "virtual-relation(is_weight=0)", "norm": "zs", "loss": "mse", "unreliable": "joint-entropy"}])


@pytest.mark.parametrize("loss", ["kl", "cosine"])
def test_rowwise_loss_cannot_be_masked_on_matrix_relation(loss):
    with pytest.raises(ConfigError, match=rf"row-wise loss '{loss}' cannot be masked per entry of a matrix relation"):
        build_objective([{"affinity": "cosine(shift=True)", "norm": "l1", "loss": loss, "redundant": "symmetric"}])
    # on edge vectors the mask addresses whole rows: fine
    build_objective([{"affinity": "edge", "norm": "softmax", "loss": loss, "redundant": "symmetric"}])


@pytest.mark.parametrize("weight,pattern", [
    (-1, r"term 0: weight=-1.0 must be a finite number >= 0"),
    (-1e-9, r"weight=-1e-09 must be a finite number >= 0"),
    (float("nan"), r"weight=nan must be a finite number >= 0"),
    (float("inf"), r"weight=inf must be a finite number >= 0"),
    ("abc", r"term 0: weight='abc' is not a number"),
    (None, r"weight=None is not a number"),
])
def test_bad_weight(weight, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_objective([dict(EDGE, weight=weight)])


def test_zero_weight_is_allowed_and_drops_teacher():
    obj = build_objective([{"loss": "ce"}, dict(EDGE, weight=0.0)])
    assert not obj.needs_teacher


@pytest.mark.parametrize("q", [0, 0.0, -0.1, 1.0000001, 1.5, True, "0.5", None])
def test_quantile_out_of_range(q):
    with pytest.raises(ConfigError, match=r"quantile=.* must be a number in \(0, 1\]"):
        build_objective([dict(EDGE, redundant="symmetric", unreliable="joint-entropy", quantile=q)])


@pytest.mark.parametrize("q", [1, 1.0, 0.5, 1e-6])
def test_quantile_in_range(q):
    obj = build_objective([dict(EDGE, redundant="symmetric", unreliable="joint-entropy", quantile=q)])
    assert obj.terms[0].quantile == float(q)


@pytest.mark.parametrize("spec", [[], (), {"terms": []}, {"terms": [], "name": "empty"}])
def test_empty_term_list(spec):
    with pytest.raises(ConfigError, match=r"an objective needs at least one term"):
        build_objective(spec)


def test_objective_class_refuses_empty():
    with pytest.raises(ConfigError, match=r"at least one term"):
        Objective([])


# ---------------------------------------------------------------------------------------------
# errors at call time
# ---------------------------------------------------------------------------------------------
def _reps(n, c=5, d=6):
    g = torch.Generator().manual_seed(0)
    return {"logits": torch.randn(n, c, generator=g), "pooled": torch.randn(n, d, generator=g),
            "map": torch.randn(n, 2, 2, 2, generator=g)}


def test_missing_student_representation():
    obj = build_objective("rkd")
    s = _reps(4)
    del s["pooled"]
    with pytest.raises(ConfigError, match=r"objective 'rkd' reads student representation 'pooled', which was not provided \(got \['logits', 'map'\]\)"):
        obj(s, _reps(4), torch.zeros(4, dtype=torch.long))


def test_missing_logits_for_joint_entropy_on_pooled():
    obj = build_objective([{"source": "pooled", "affinity": "edge", "norm": "zs", "loss": "mse", "unreliable": "joint-entropy"}])
    assert obj.student_sources() == {"pooled", "logits"}
    with pytest.raises(ConfigError, match=r"reads student representation 'logits'"):
        obj({"pooled": torch.randn(4, 3)}, {"pooled": torch.randn(4, 3)})


def test_missing_teacher():
    obj = build_objective("sp")
    with pytest.raises(ConfigError, match=r"objective 'sp' needs teacher representations"):
        obj(_reps(4), None, torch.zeros(4, dtype=torch.long))
    t = _reps(4)
    del t["map"]
    with pytest.raises(ConfigError, match=r"objective 'sp' reads teacher representation 'map', which was not provided"):
        obj(_reps(4), t, torch.zeros(4, dtype=torch.long))


def test_teacher_not_needed_for_ce():
    obj = build_objective("ce")
    assert not obj.needs_teacher
    out = obj(_reps(4), None, torch.zeros(4, dtype=torch.long))
    assert torch.isfinite(out["total"])


def test_missing_targets():
    with pytest.raises(ConfigError, match=r"objective 'kd' needs targets \(labels\)"):
        build_objective("kd")(_reps(4), _reps(4))


def test_rows_do_not_hold_views():
    obj = build_objective("vrm")
    with pytest.raises(ConfigError, match=r"objective needs 2 views x 4 rows, got 6"):
        obj(_reps(6), _reps(6), torch.zeros(4, dtype=torch.long), batch_size=4)


def test_views_need_batch_size():
    """A plain batch of 16 rows must not be read as 8 real + 8 virtual rows (CE on 8 samples, silently)."""
    obj = build_objective("vrm")
    assert obj.views == 1
    with pytest.raises(ConfigError, match=r"^objective 'vrm' reads 1 virtual view\(s\) per image: pass batch_size= \(the number of real images B"):
        obj(_reps(16), _reps(16), torch.zeros(16, dtype=torch.long))
    out = obj(_reps(16), _reps(16), torch.zeros(8, dtype=torch.long), batch_size=8)
    assert torch.isfinite(out["total"])
    # without views every row is a real image, batch_size or not
    ce = build_objective("ce")
    y = torch.arange(16) % 5
    assert ce(_reps(16), None, y)["total"].item() == pytest.approx(ce(_reps(16), None, y, batch_size=16)["total"].item())


# ---------------------------------------------------------------------------------------------
# accepted forms and describe() round trips
# ---------------------------------------------------------------------------------------------
POSITIVE = {
    "list of term dicts": [{"loss": "ce"}, {"source": "pooled", "affinity": "rbf(gamma=0.4,order=2)", "norm": "none",
                                            "loss": "mse", "weight": 100.0, "name": "cc"}],
    "dict with terms": {"name": "mine", "terms": [{"loss": "ce", "weight": 0.5},
                                                 {"affinity": "edge", "norm": "l2", "loss": "smooth-l1(beta=0.5)",
                                                  "redundant": "symmetric", "unreliable": "joint-entropy", "quantile": 0.8}]},
    "method plus extra terms": {"method": "kd", "terms": [{"source": "pooled", "affinity": "euclidean", "norm": "mean",
                                                           "loss": "smooth-l1", "weight": 25.0}]},
    "method with a duplicate ce": {"method": "rkd", "terms": [{"loss": "ce", "weight": 0.2}]},
    "triple string": "virtual-relation/zs/mse",
    "triple string with params": "cosine(shift=True)/l1/kl(reduction='mean')",
    "tuple": ("gram", "l2", "mse"),
    "single term dict": {"affinity": "class-edge", "norm": "softmax(t=2.0)", "loss": "kl", "pre": "zs"},
    **{f"preset {m}": m for m in METHODS.names()},
}


def _run(obj, seed=0):
    b = 4
    n = b * (1 + obj.views)
    g = torch.Generator().manual_seed(seed)
    s = {"logits": torch.randn(n, 5, generator=g), "pooled": torch.randn(n, 6, generator=g), "map": torch.randn(n, 2, 2, 2, generator=g)}
    t = {"logits": torch.randn(n, 5, generator=g), "pooled": torch.randn(n, 6, generator=g), "map": torch.randn(n, 2, 2, 2, generator=g)}
    return obj(s, t, torch.arange(b) % 5, batch_size=b)


@pytest.mark.parametrize("spec", list(POSITIVE.values()), ids=list(POSITIVE))
def test_describe_round_trips(spec):
    obj = build_objective(spec)
    desc = obj.describe()
    again = build_objective(desc)
    assert again.describe() == desc
    assert build_objective(again.describe()).describe() == desc
    assert [t.name for t in again.terms] == [t.name for t in obj.terms]
    assert again.views == obj.views
    a, b = _run(obj), _run(again)
    assert a.keys() == b.keys()
    for k in a:
        assert b[k].item() == pytest.approx(a[k].item(), rel=1e-6, abs=1e-9), k
    assert torch.isfinite(a["total"]) and a["total"].item() > 0


def test_positive_forms_have_expected_terms():
    assert [t.name for t in build_objective(POSITIVE["list of term dicts"]).terms] == ["ce", "cc"]
    obj = build_objective(POSITIVE["dict with terms"])
    assert obj.name == "mine" and [t.name for t in obj.terms] == ["ce", "edge/l2/smooth-l1"]
    assert obj.describe()[1]["quantile"] == 0.8 and obj.describe()[1]["unreliable"] == "joint-entropy"
    obj = build_objective(POSITIVE["method plus extra terms"])
    assert obj.name == "kd" and [t.name for t in obj.terms] == ["ce", "kd", "euclidean/mean/smooth-l1"]
    assert [t.weight for t in obj.terms] == [0.1, 0.9, 25.0]
    obj = build_objective(POSITIVE["method with a duplicate ce"])
    assert [t.name for t in obj.terms] == ["ce#1", "rkd-distance", "rkd-angle", "ce#2"]
    obj = build_objective("virtual-relation/zs/mse")
    assert obj.name == "virtual-relation/zs/mse" and obj.views == 1
    assert obj.describe() == [{"source": "logits", "affinity": "virtual-relation", "norm": "zs", "loss": "mse",
                               "weight": 1.0, "name": "virtual-relation/zs/mse"}]
    obj = build_objective(("gram", "l2", "mse"))
    assert obj.name == "gram/l2/mse"
    assert obj.describe() == build_objective("gram/l2/mse").describe()


def test_tuple_and_string_triples_agree():
    for aff, norm, loss in [("gram", "l2", "mse"), ("edge", "zs", "cosine"), ("rbf(order=None)", "softmax(t=2)", "kl")]:
        a = build_objective((aff, norm, loss))
        b = build_objective(f"{aff}/{norm}/{loss}")
        assert a.describe() == b.describe()
        va, vb = _run(a), _run(b)
        assert va["total"].item() == pytest.approx(vb["total"].item(), rel=1e-7)


def test_build_objective_passes_objects_through_and_does_not_mutate_spec():
    obj = build_objective("rkd")
    assert build_objective(obj) is obj
    spec = [{"loss": "ce"}, dict(EDGE, name="e")]
    before = [dict(t) for t in spec]
    build_objective(spec)
    assert spec == before


def test_presets_are_not_shared_between_objectives():
    a, b = build_objective("rkd"), build_objective("rkd")
    a.terms[1].weight = 0.0
    assert b.terms[1].weight == 25.0
    assert METHODS.build("rkd")[1]["weight"] == 25.0


def test_describe_reports_resolved_specs():
    d = build_objective("vrm-zs-edge").describe()
    assert d[0] == {"source": "logits", "affinity": "identity", "norm": "none", "loss": "ce", "weight": 1.0, "name": "ce"}
    assert d[1] == {"source": "logits", "affinity": "virtual-relation(views=1,is_weight=1.0,ic_weight=1.0)", "norm": "zs",
                    "loss": "mse", "weight": 1.0, "redundant": "symmetric", "unreliable": "joint-entropy",
                    "quantile": 0.9, "name": "vrm"}
    assert build_objective("pkt").describe()[1]["loss"] == "kl(reduction='mean',eps=1e-07)"


def test_term_names_are_unique():
    obj = build_objective([{"loss": "ce"}, {"loss": "ce", "weight": 0.5}, {"loss": "ce", "weight": 0.25, "name": "ce#2"}])
    names = [t.name for t in obj.terms]
    assert len(set(names)) == len(names)
    out = obj(_reps(4), None, torch.zeros(4, dtype=torch.long))
    assert len(out) == 4  # three terms + total
