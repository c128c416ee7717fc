"""The generic registry: spec forms, errors (value, choices, closest match), aliases, listings, docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import akd
from akd import AFFINITIES, LOSSES, METHODS, NORMALIZATIONS, ConfigError, Registry
from akd.registry import format_spec, parse_spec

FAMILIES = {"affinity": AFFINITIES, "normalization": NORMALIZATIONS, "loss": LOSSES, "method": METHODS}

EXPECTED_NAMES = {
    "affinity": ["angle", "class-edge", "class-identity", "cosine", "edge", "euclidean", "gram", "identity", "rbf",
                 "virtual-relation"],
    "normalization": ["l1", "l2", "mean", "none", "softmax", "zs"],
    "loss": ["ce", "cosine", "dkd", "edge-huber", "frobenius", "kd", "kl", "l1", "mse", "pearson", "smooth-l1"],
    "method": ["cc", "ce", "dist", "dkd", "kd", "kd-ls", "pkt", "rkd", "sp", "vrm", "vrm-zs-edge"],
}

ALIASES = [
    (AFFINITIES, "gaussian", "rbf"), (AFFINITIES, "dot", "gram"), (AFFINITIES, "distance", "euclidean"),
    (AFFINITIES, "inter-sample", "edge"), (AFFINITIES, "inter-class", "class-edge"),
    (AFFINITIES, "vrm", "virtual-relation"), (AFFINITIES, "instance", "identity"),
    (NORMALIZATIONS, "identity", "none"), (NORMALIZATIONS, "sum", "l1"), (NORMALIZATIONS, "zscore", "zs"),
    (NORMALIZATIONS, "zsnorm", "zs"),
    (LOSSES, "l2", "mse"), (LOSSES, "mae", "l1"), (LOSSES, "huber", "smooth-l1"), (LOSSES, "smooth_l1", "smooth-l1"),
    (LOSSES, "fro", "frobenius"), (LOSSES, "cos", "cosine"), (LOSSES, "cross-entropy", "ce"), (LOSSES, "hinton", "kd"),
]


# ---------------------------------------------------------------------------------------------
# spec forms
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [
    "rbf(gamma=0.4,order=2)", "rbf( gamma = 0.4 , order = 2 )", "rbf", "rbf()", "gaussian(gamma=0.4)",
    {"name": "rbf", "gamma": 0.4, "order": 2}, {"name": "rbf"}, {"name": "rbf", "order": 2.0},
])
def test_rbf_spec_forms_build_same(spec):
    a = AFFINITIES.build(spec)
    assert type(a).__name__ == "RBF"
    assert (a.gamma, a.order) == (0.4, 2)
    assert isinstance(a.order, int) and isinstance(a.gamma, float)


@pytest.mark.parametrize("spec", ["rbf(order=None)", "rbf(order=none)", "rbf(order=null)", {"name": "rbf", "order": None}])
def test_rbf_exact_kernel_specs(spec):
    a = AFFINITIES.build(spec)
    assert a.order is None and a.nonnegative


def test_spec_forms_resolve_to_same_params():
    forms = ["rbf(gamma=0.7,order=3)", {"name": "rbf", "gamma": 0.7, "order": 3}, "gaussian(order=3,gamma=0.7)"]
    resolved = [AFFINITIES.resolve(f) for f in forms]
    assert all(e.name == "rbf" for e, _ in resolved)
    assert all(p == {"gamma": 0.7, "order": 3} for _, p in resolved)


def test_build_overrides():
    a = AFFINITIES.build("rbf(gamma=0.7)", order=4)
    assert (a.gamma, a.order) == (0.7, 4)
    with pytest.raises(ConfigError, match="gama"):
        AFFINITIES.build("rbf", gama=1.0)


@pytest.mark.parametrize("spec,params", [
    ("softmax(t=2)", {"t": 2.0}),
    ("kl(reduction='mean',eps=1e-7)", {"reduction": "mean", "eps": 1e-7}),
    ("kl(reduction=mean)", {"reduction": "mean"}),  # bare identifier read as a string
    ("cosine(shift=true)", {"shift": True}),
    ("cosine(shift=True,eps=0)", {"shift": True, "eps": 0.0}),
    ("euclidean(squared=false)", {"squared": False}),
    ("smooth-l1(beta=0.5)", {"beta": 0.5}),
    ("virtual-relation(views=2,is_weight=1,ic_weight=0.5)", {"views": 2, "is_weight": 1.0, "ic_weight": 0.5}),
])
def test_params_are_parsed_and_coerced(spec, params):
    for reg in (AFFINITIES, NORMALIZATIONS, LOSSES):
        name = parse_spec(spec)[0]
        if name in reg:
            _, got = reg.resolve(spec)
            assert got == params
            assert all(type(got[k]) is type(v) for k, v in params.items())
            break
    else:  # pragma: no cover
        pytest.fail(f"{spec} names no part")


def test_parse_spec_examples():
    assert parse_spec("rbf(gamma=0.4,order=None)") == ("rbf", {"gamma": 0.4, "order": None})
    assert parse_spec("  zs ") == ("zs", {})
    assert parse_spec({"name": "zs", "eps": 1e-5}) == ("zs", {"eps": 1e-5})
    assert parse_spec("softmax(t=abc)") == ("softmax", {"t": "abc"})


@pytest.mark.parametrize("bad", ["rbf(0.4)", "rbf(gamma=)", "rbf(gamma=0.4", "(gamma=1)", "rbf(**x)", 42, ["rbf"], {"gamma": 1}])
def test_unparseable_specs(bad):
    with pytest.raises(ConfigError):
        AFFINITIES.build(bad)


ident = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda s: s not in {"if", "in", "is", "or", "and", "not", "for", "def", "as", "del", "try", "with", "else", "elif", "from", "pass", "class", "while", "break", "yield", "raise", "lambda", "global", "assert", "import", "return", "except", "finally", "continue", "nonlocal", "async", "await"})
values = st.one_of(
    st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
    st.text(max_size=10),
)


@settings(max_examples=40, deadline=None)
@given(name=ident, params=st.dictionaries(ident, values, max_size=4))
def test_format_spec_inverts_parse_spec(name, params):
    assert parse_spec(format_spec(name, params)) == (name, params)


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_format_spec_inverts_parse_spec_for_infinite_floats(value):
    assert parse_spec(format_spec("smooth-l1", {"beta": value})) == ("smooth-l1", {"beta": value})


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reg,bad,near", [
    (AFFINITIES, "gausian", "gaussian"), (AFFINITIES, "cosin", "cosine"), (AFFINITIES, "eucliden", "euclidean"),
    (NORMALIZATIONS, "softmx", "softmax"), (NORMALIZATIONS, "zscor", "zscore"),
    (LOSSES, "smoth-l1", "smooth-l1"), (LOSSES, "frobenious", "frobenius"), (METHODS, "rkdd", "rkd"),
    (METHODS, "pkt2", "pkt"),
])
def test_unknown_name_names_value_choices_and_closest(reg, bad, near):
    with pytest.raises(ConfigError) as ei:
        reg.build(bad)
    msg = str(ei.value)
    assert f"unknown {reg.family} '{bad}'" in msg
    assert f"did you mean '{near}'?" in msg
    listed = msg.split("valid choices:")[1]
    for name in reg.names():
        assert re.search(rf"(^|[ ,]){re.escape(name)}(,|$)", listed), name


def test_unknown_name_without_close_match():
    with pytest.raises(ConfigError) as ei:
        LOSSES.build("qqqqqqqqqq")
    assert "did you mean" not in str(ei.value)
    assert "'qqqqqqqqqq'" in str(ei.value) and "mse" in str(ei.value)


@pytest.mark.parametrize("reg,spec,param,valid", [
    (AFFINITIES, "rbf(gama=0.3)", "gama", ["gamma", "order"]),
    (AFFINITIES, {"name": "cosine", "shfit": True}, "shfit", ["shift", "eps"]),
    (NORMALIZATIONS, "softmax(temperature=2)", "temperature", ["t"]),
    (LOSSES, "kl(reductio='mean')", "reductio", ["reduction", "eps"]),
    (LOSSES, "mse(beta=1)", "beta", ["reduction"]),
    (LOSSES, "frobenius(beta=1)", "beta", ["none"]),
    (METHODS, "rkd(weight=2)", "weight", ["none"]),
])
def test_unknown_parameter(reg, spec, param, valid):
    with pytest.raises(ConfigError) as ei:
        reg.build(spec)
    msg = str(ei.value)
    assert f"no parameter '{param}'" in msg
    assert "valid parameters: " + ", ".join(valid) in msg


def test_unknown_parameter_closest_match():
    with pytest.raises(ConfigError, match=r"did you mean 'gamma'\?"):
        AFFINITIES.build("rbf(gama=0.3)")


@pytest.mark.parametrize("reg,spec,value,typ", [
    (NORMALIZATIONS, "softmax(t=abc)", "abc", "float"),
    (AFFINITIES, "rbf(order=1.5)", "1.5", "int or None"),
    (AFFINITIES, "rbf(gamma='x')", "x", "float"),
    (AFFINITIES, "cosine(shift=1)", "1", "bool"),
    (AFFINITIES, "euclidean(squared=maybe)", "maybe", "bool"),
    (LOSSES, "kl(reduction='sum')", "sum", "one of batchmean|mean"),
    (AFFINITIES, "virtual-relation(views=true)", "True", "int"),
    (AFFINITIES, {"name": "rbf", "gamma": [1, 2]}, "[1, 2]", "float"),
])
def test_ill_typed_values(reg, spec, value, typ):
    with pytest.raises(ConfigError) as ei:
        reg.build(spec)
    msg = str(ei.value)
    assert value in msg
    assert f"is not {typ}" in msg


@pytest.mark.parametrize("reg,spec,fragment", [
    (AFFINITIES, "rbf(gamma=-1)", "gamma=-1"),
    (AFFINITIES, "rbf(gamma=0)", "gamma=0"),
    (AFFINITIES, "rbf(order=-1)", "order=-1"),
    (NORMALIZATIONS, "softmax(t=0)", "t=0"),
    (NORMALIZATIONS, "softmax(t=-2.5)", "t=-2.5"),
    (NORMALIZATIONS, "zs(eps=0)", "eps=0"),
    (NORMALIZATIONS, "l2(eps=-1)", "eps=-1"),
    (AFFINITIES, "euclidean(eps=0)", "eps=0"),
    (AFFINITIES, "virtual-relation(views=-1)", "views=-1"),
    (LOSSES, "smooth-l1(beta=0)", "beta=0"),
    (LOSSES, "kd(t=0)", "t=0"),
    (LOSSES, "ce(label_smoothing=1.0)", "label_smoothing=1.0"),
])
def test_invalid_values(reg, spec, fragment):
    with pytest.raises(ConfigError) as ei:
        reg.build(spec)
    assert fragment in str(ei.value)


def test_virtual_relation_weights_cannot_both_be_zero():
    with pytest.raises(ConfigError, match="cannot both be 0"):
        AFFINITIES.build("virtual-relation(is_weight=0,ic_weight=0)")
    AFFINITIES.build("virtual-relation(is_weight=0,ic_weight=1)")


def test_config_error_is_value_error_and_akd_error():
    with pytest.raises(ValueError):
        AFFINITIES.build("nope")
    with pytest.raises(akd.AkdError):
        AFFINITIES.build("nope")


# ---------------------------------------------------------------------------------------------
# aliases, listings, docs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reg,alias,name", ALIASES, ids=[f"{r.family}:{a}" for r, a, _ in ALIASES])
def test_aliases_resolve(reg, alias, name):
    assert alias in reg
    assert reg.get(alias).name == name
    assert reg.get(alias) is reg.get(name)
    assert type(reg.build(alias)) is type(reg.build(name))
    assert alias not in reg.names()


@pytest.mark.parametrize("family", FAMILIES)
def test_names_sorted_and_complete(family):
    reg = FAMILIES[family]
    names = reg.names()
    assert names == sorted(names)
    assert names == EXPECTED_NAMES[family]
    assert [e.name for e in reg.entries()] == names
    assert all(e.family == family for e in reg.entries())


def test_every_method_toml_is_registered():
    tomls = sorted(p.stem for p in (Path(akd.__file__).parent / "methods").glob("*.toml"))
    assert METHODS.names() == tomls


def test_every_registering_module_is_imported():
    """Each module of a part package that registers parts (``@X.register(``) shows up in the registry."""
    root = Path(akd.__file__).parent
    for sub, reg, deco in (("affinity", AFFINITIES, "@AFFINITIES.register("),
                           ("normalization", NORMALIZATIONS, "@NORMALIZATIONS.register("),
                           ("losses", LOSSES, "@LOSSES.register(")):
        modules = {p.stem: p.read_text().count(deco) for p in (root / sub).glob("*.py")}
        modules = {m: k for m, k in modules.items() if k}
        registered: dict[str, int] = {}
        for e in reg.entries():
            mod = e.obj.__module__.rsplit(".", 1)[1]
            registered[mod] = registered.get(mod, 0) + 1
        assert registered == modules, sub


FORMULA = re.compile(r"=|Σ|·|→|∈|‖|√|−log|exp\(")


@pytest.mark.parametrize("family", ["affinity", "normalization", "loss"])
def test_parts_have_one_line_doc_and_formula(family):
    for e in FAMILIES[family].entries():
        assert e.doc and "\n" not in e.doc and len(e.doc) > 20, e.name
        assert e.formula.splitlines()[0] == e.doc, e.name
        assert any(FORMULA.search(line) for line in e.formula.splitlines()), f"{e.name}: no formula in docstring"


def test_methods_have_doc_source_and_show_their_weights():
    for e in METHODS.entries():
        assert e.doc and "\n" not in e.doc, e.name
        assert e.formula.startswith(e.doc) and "Source:" in e.formula, e.name
        assert e.meta["source"], e.name
        terms = e.meta["terms"]
        assert terms == e.obj()  # the factory returns the TOML's terms …
        assert e.obj() is not e.obj()  # … as a fresh copy
        if len(terms) > 1:
            assert "+" in e.doc, e.name
        for t in terms:
            w = float(t.get("weight", 1.0))
            if w != 1.0:  # non-unit weights are spelt out in the doc line ("25 x distance")
                assert f"{w:g} x" in e.doc, (e.name, w)


def test_method_factory_copy_is_independent():
    terms = METHODS.build("rkd")
    terms[1]["weight"] = -5
    assert METHODS.build("rkd")[1]["weight"] == 25.0


def test_signature_and_repr():
    assert AFFINITIES.get("rbf").signature() == "gamma: float = 0.4, order: int or None = 2"
    assert "rbf" in repr(AFFINITIES) and "affinity" in repr(AFFINITIES)


# ---------------------------------------------------------------------------------------------
# a fresh registry
# ---------------------------------------------------------------------------------------------
def test_fresh_registry_register_and_errors():
    reg = Registry("widget", skip=1)

    @reg.register("spring", aliases=("coil",), doc="A spring: F = k·x.", unit="N")
    def spring(n_coils: int, k: float = 1.0, label: str = "s"):
        """A spring: F = k·x."""
        return (n_coils, k, label)

    assert reg.build("coil(k=2)", 7) == (7, 2.0, "s")
    assert reg.get("spring").meta == {"unit": "N"}
    assert list(reg.get("spring").params) == ["k", "label"]  # n_coils is supplied by build()
    with pytest.raises(ValueError, match="twice"):
        reg.add("coil", spring)
    r2 = Registry("w")
    r2.add("x", lambda a: a)
    with pytest.raises(ConfigError, match=r"'x' needs parameter\(s\): a"):
        r2.build("x")


@pytest.mark.parametrize("spec,root", [
    ("image-folder(root=/a/b c)", "/a/b c"),                       # unquoted, with a space: not Python syntax
    ('image-folder(root="/a/b",size=32)', "/a/b"),                  # quoted
    ("image-folder(root='/x, y',size=32)", "/x, y"),                # a comma needs quotes
    ("image-folder(root=data/imagenet-1k,size=32)", "data/imagenet-1k"),  # valid Python (a division): kept as text
    ("image-folder(root=~/imagenet, size=32)", "~/imagenet"),
])
def test_paths_in_specs_quoted_or_not(spec, root):
    name, params = parse_spec(spec)
    assert name == "image-folder" and params["root"] == root
    assert params.get("size", 32) == 32


def test_loose_spec_without_key_is_one_line_error():
    with pytest.raises(ConfigError, match="expected key=value pairs"):
        parse_spec("image-folder(/a/b)")
