"""The expression language: every expression the suite ships evaluates as before, and no expression runs code.

The attack corpus tries what an attacker writes in a config or a checkpoint header (dunder walks from
literals, format strings, lambdas, comprehensions, resource bombs); each payload would create a file in
``tmp_path`` if it ran. Regression for issue 11 (an expression in a RootSpec, and in a checkpoint's
``input_spec``, ran a shell command through ``eval``).
"""

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
import uproot
import yaml
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import TensorDataset

import torchsci
from torchsci.cli import main
from torchsci.errors import CheckpointError, DataError, TorchsciError
from torchsci_physics import reading
from torchsci_physics.data import PARTICLE_NAMES, RootDataset, RootSpec
from torchsci_physics.datasets import QG_ISSUE96
from torchsci_physics.expressions import MAX_DEPTH, ExpressionError, check, evaluate, names_in
from torchsci_physics.spec import expressions_for

ROOT = Path(__file__).resolve().parents[2]


def _old_evaluate(expression, namespace):
    """The evaluator this suite used before the language, frozen here as the reference for its semantics:
    ``eval`` with emptied builtins. It is only given the expressions written in this repository, and once a
    payload, to show that the corpus is live."""
    scope = {name: getattr(np, name) for name in (
        "log", "log1p", "log10", "exp", "sqrt", "abs", "sin", "cos", "tan", "arctan2", "arcsinh", "cosh", "sinh",
        "tanh", "where", "minimum", "maximum", "clip", "sign", "isfinite", "pi")}
    scope.update(num=ak.num, ak=ak, np=np, sum=ak.sum, min=ak.min, max=ak.max, any=ak.any, all=ak.all)
    scope.update(namespace)
    return eval(compile(expression, "<old>", "eval"), {"__builtins__": {}}, scope)  # noqa: S307


# ---------------------------------------------------------------------------------------------- same arrays
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """One uproot-written tree with every branch the tests, README and benchmarks' expressions read."""
    rng = np.random.default_rng(0)
    n = 64
    data = {"event": np.arange(n, dtype=np.int64), "w": rng.uniform(0.5, 1.5, n),
            "is_signal": (np.arange(n) % 2).astype(np.int32), "J_m": np.full(n, 5.0)}
    for prefix in ("j1", "j2", "J1", "J2"):
        data.update({f"{prefix}_pt": np.where(np.arange(n) % 3 == 0, 0.0, rng.exponential(40, n) + 20),
                     f"{prefix}_eta": rng.normal(0, 1, n), f"{prefix}_phi": rng.uniform(-3, 3, n)})
    for jet in ("jet1", "jet2"):
        data.update({f"{jet}_pt": rng.exponential(50, n).astype(np.float32) + 30, f"{jet}_eta": rng.normal(0, 1, n),
                     f"{jet}_phi": rng.uniform(-3, 3, n), f"{jet}_mass": rng.uniform(1, 20, n),
                     f"{jet}_nch": rng.integers(1, 30, n).astype(np.int32),
                     f"{jet}_id": rng.choice([-1, 1, 2, 21], n).astype(np.int32)})
    jagged = {"Muon": ("pt", "eta", "phi", "m"), "Track": ("pt", "eta", "phi", "mass", "charge"),
              "Tower": ("pt", "eta", "phi", "mass"), "jet1_trk": ("px", "py", "pz", "E", "charge"),
              "jet2_trk": ("px", "py", "pz", "E", "charge")}
    for prefix, fields in jagged.items():
        counts = rng.integers(0, 6, n)
        for f in fields:
            values = rng.exponential(10, counts.sum()) + 1 if f in ("pt", "E", "m", "mass") else rng.normal(0, 2, counts.sum())
            dtype = np.float32 if prefix.startswith("jet") else np.float64
            data[f"{prefix}_{f}"] = ak.unflatten(values.astype(dtype), counts)
    for jet in ("jet1", "jet2"):  # physical four-momenta: E above |p|
        data[f"{jet}_trk_E"] = sum(np.abs(data[f"{jet}_trk_{c}"]) for c in ("px", "py", "pz")) + 1
    path = tmp_path_factory.mktemp("expressions") / "synthetic.root"
    with uproot.recreate(path) as f:
        f.mktree("events", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()})
        f["events"].extend(data)
    return str(path)


def _spec_expressions(spec):
    spec = RootSpec(files=[], **spec)
    return [e for obj in (spec.objects or [None]) for e in expressions_for(spec, obj, True)]


def _config_specs():
    """The data part of every physics experiment config on the issue96 file, merged over its dataset's defaults
    like the factory does (configs on other files, e.g. the generated event-classification ntuple, are run by
    their own tests)."""
    out = {}
    for path in sorted((ROOT / "torchsci_physics" / "configs" / "experiment" / "physics").glob("*.yaml")):
        data = dict(yaml.safe_load(path.read_text())["data"])
        name = data.pop("name")
        assert name in ("physics/qg_issue96", "physics/root"), f"{path}: add its dataset's defaults to this test"
        if name == "physics/root" and "issue96" not in str(data.get("files")):
            continue
        out[path.name] = {**(QG_ISSUE96 if name == "physics/qg_issue96" else {}), **data}
    assert out, "no physics experiment config found"
    return out


ISSUE96_EXPRESSIONS = [
    # torchsci_physics/reading.py's docstring and tests/physics/test_data.py
    "num(jet1TrksChg)", "(jet1P4 + jet2P4).mass", "jet1P4.deltaR(jet2P4)", "log({obj}ChgMult - 100)", "{obj}ID",
    "{obj}TrksChg", "{obj}ID > 100", "EventNumber < 0", "EventNumber > 0", "EventNumber % 2 == 0", "{obj}ChgMult",
    "jet1ChgMult", "EventNumber", "jet1ID", "jet2ID",
    # README (physics section)
    "EventNumber % 2 == 1",
]
SYNTHETIC_EXPRESSIONS = [
    # tests/physics/test_data.py
    "w", "j1_pt + j2_pt", "j{i}_pt", "j{i}_eta", "j{i}_phi", "0 * j{i}_pt", "event % 2", "num(Muon_pt)", "Muon_pt",
    "Muon_eta", "Muon_phi", "Muon_m", "where(num(Muon_pt) > 0, 1.0, 0.0)", "j1_pt", "pt > 0",
    # tests/physics/test_collections.py and the README's two collections
    "is_signal", "num(Track_pt, axis=1)", "Track_pt", "Track_eta", "Track_phi", "Track_mass", "Track_charge",
    "Tower_pt", "Tower_eta", "Tower_phi", "Tower_mass", "event % 3 != 0", "event % 3 == 0", "J{i}_pt", "J{i}_eta",
    "J{i}_phi", "J_m", "log(Tower_pt - 3)", "event % 2 == 0",
    # tests/physics/test_predict_metrics.py
    "log({obj}_pt)", "{obj}_nch", "{obj}_id == 21", "{obj}_id > 0", "event % 2 == 1", "event",
    # benchmarks/physics_read.py
    "{obj}_eta", "{obj}_trk_px", "{obj}_trk_py", "{obj}_trk_pz", "{obj}_trk_E", "{obj}_trk_charge",
    'ak.zip({"pt": {obj}_pt, "eta": {obj}_eta, "phi": {obj}_phi, "mass": {obj}_mass}, with_name="Momentum4D")',
]


def _expand(expressions, objects, numbered=2):
    out = []
    for e in expressions:
        for x in ([e.replace("{i}", str(i)) for i in range(1, numbered + 1)] if "{i}" in e else [e]):
            out += [reading.substitute(x, o) for o in objects] if "{obj}" in x else [x]
    return out


def _same(old, new):
    if isinstance(old, ak.Array) or isinstance(new, ak.Array):
        return (isinstance(old, ak.Array) and isinstance(new, ak.Array) and str(ak.type(old)) == str(ak.type(new))
                and ak.array_equal(old, new, equal_nan=True))
    if isinstance(old, np.ndarray) or isinstance(new, np.ndarray):
        return old.dtype == new.dtype and np.array_equal(old, new, equal_nan=True)
    return type(old) is type(new) and old == new


def _compare(path, tree, expressions, entry_stop):
    checked = 0
    for expression in expressions:
        needed = reading.branches_for([expression], reading.branch_names(tree), path, local=PARTICLE_NAMES)
        namespace = reading.read_range(tree, needed, path, 0, entry_stop)
        for name in names_in(expression) - needed - {"pi"}:  # the reader's derived particle names: jagged values
            namespace[name] = ak.Array([[0.5, -1.0], [], [2.0]])
        old, new = _old_evaluate(expression, namespace), reading.evaluate(expression, namespace, path)
        assert _same(old, new), f"{expression!r}: {old!r} != {new!r}"
        checked += 1
    return checked


def test_every_shipped_issue96_expression_gives_the_same_arrays_as_before(issue96):
    expressions = [e for spec in (QG_ISSUE96, *_config_specs().values()) for e in _spec_expressions(spec)]
    expressions += _expand(ISSUE96_EXPRESSIONS, ["jet1", "jet2"])
    expressions = sorted(set(expressions))
    assert {"log(jet1P4.pt)", "jet2TrksP4", "(EventNumber % 2 == 0) & (EventNumber % 10 != 0)",
            "(jet1ID > 0) & (jet2ID > 0)"} <= set(expressions)
    tree = uproot.open(issue96)["tree"]
    assert _compare(issue96, tree, expressions, entry_stop=3000) == len(expressions) >= 30


def test_every_expression_of_the_tests_readme_and_benchmarks_gives_the_same_arrays_as_before(synthetic):
    expressions = sorted(set(_expand(SYNTHETIC_EXPRESSIONS, ["jet1", "jet2"])))
    tree = uproot.open(synthetic)["events"]
    assert _compare(synthetic, tree, expressions, entry_stop=None) == len(expressions) >= 50


def test_what_physicists_write_beyond_the_shipped_expressions(synthetic):
    tree = uproot.open(synthetic)["events"]
    ns = reading.read_range(tree, reading.branch_names(tree), synthetic)
    pt = ns["Muon_pt"]
    cases = {
        "num(Muon_pt[Muon_pt > 20])": ak.num(pt[pt > 20]),
        "sum(Muon_pt[Muon_pt > 20], axis=1)": ak.sum(pt[pt > 20], axis=1),
        "fill_none(firsts(Muon_pt), -1.0)": ak.fill_none(ak.firsts(pt), -1.0),
        "pad_none(Muon_pt, 2, clip=True)[:, 1]": ak.pad_none(pt, 2, clip=True)[:, 1],
        "ak.max(Muon_pt, axis=1, mask_identity=False)": ak.max(pt, axis=1, mask_identity=False),
        "np.hypot(j1_pt, j2_pt) ** 2": np.hypot(ns["j1_pt"], ns["j2_pt"]) ** 2,
        "0 < j1_eta < 1": (ns["j1_eta"] > 0) & (ns["j1_eta"] < 1),
        "(j1_pt > 30) and not (j2_pt > 30)": (ns["j1_pt"] > 30) & ~(ns["j2_pt"] > 30),
        "abs(j1_phi - j2_phi) % (2 * pi)": np.abs(ns["j1_phi"] - ns["j2_phi"]) % (2 * np.pi),
        "(event & 3) | (event >> 1) ^ 1": (ns["event"] & 3) | (ns["event"] >> 1) ^ 1,
        "-Muon_eta[:, :2]": -ns["Muon_eta"][:, :2],
    }
    for expression, want in cases.items():
        got = evaluate(expression, ns, synthetic)
        assert ak.to_list(got) == ak.to_list(want), expression
    assert str(ak.type(evaluate("num(Muon_pt[Muon_pt > 20])", ns))) == str(ak.type(cases["num(Muon_pt[Muon_pt > 20])"]))


# ---------------------------------------------------------------------------------------------- attacks
def _payloads(p):
    op = f"open('{p}', 'w')"
    walk = "().__class__.__base__.__subclasses__()"
    return [
        f"[c for c in {walk} if c.__name__ == 'catch_warnings'][0]()._module.__builtins__['open']('{p}', 'w')",
        f"{walk}[0].__init__.__globals__['__builtins__']['open']('{p}', 'w')",
        f"().__class__.__bases__[0].__subclasses__()[-1].__init__.__globals__['os'].system('touch {p}')",
        f"x.__class__.__init__.__globals__['os'].system('touch {p}')",
        f"x.__class__.__mro__[-1].__subclasses__()[0].__init__.__globals__['sys'].modules['os'].system('touch {p}')",
        f"jet1P4.__init__.__globals__['__builtins__']['exec'](\"open('{p}', 'w')\")",
        f"__builtins__['open']('{p}', 'w')",
        f"__import__('os').system('touch {p}')",
        op,
        "getattr(x, '__class__')",
        f"eval(\"{op}\")",
        f"exec(\"{op}\")",
        f"(lambda: {op})()",
        f"[{op} for _ in (1,)]",
        f"{{{op} for _ in (1,)}}",
        f"{{1: {op} for _ in (1,)}}",
        f"next({op} for _ in (1,))",
        f"(f := {op})",
        f"f\"{{{op}}}\"",
        "'{0.__class__.__init__.__globals__}'.format(x)",
        f"'%s' % {op}",
        f"log(*[{op}])",
        f"log(**{{'x': {op}}})",
        f"np.save('{p}', x)",
        f"np.savetxt('{p}', x)",
        f"np.lib.npyio.savetxt('{p}', x)",
        f"np.load('{p}', allow_pickle=True)",
        f"ak.to_parquet(x, '{p}')",
        f"ak.Array(x).to_list.__self__.__class__.__init__.__globals__['os'].system('touch {p}')",
        f"x.show(file={op})",
        f"where(x > 0, {op}, 0)",
        f"jet1P4.deltaR({op})",
        f"x[{walk}[0]]",
        f"sort(x, key={op})",
        f"ak.zip({{'__class__': x, 'a': {op}}})",
        f"ak.zip({{'pt': x}}, with_name='{p}')",
        f"({op} if x else 0)",
        f"pi.__class__.__base__.__subclasses__()[0].__init__.__globals__['os'].system('touch {p}')",
        f"x.behavior['os'].system('touch {p}')",
        f"\uff4f\uff50\uff45\uff4e('{p}', 'w')",  # fullwidth letters: Python folds them to 'open'
        "x.__class__.__name__",
        f"__len__ + {op}",
    ]


BOMBS = ["10 ** 10 ** 10", "2 ** 100000", "'a' * 10 ** 9", "1 << 10 ** 9", "x ** 10 ** 10", "9 ** 9 ** 9 ** 9",
         "-" * 200 + "x", "log(" * 100 + "x" + ")" * 100, " + ".join(["x"] * 3000), "x" * 5000,
         "pad_none(x, 10 ** 8)", "((2 ** 64) ** 64) ** 64"]


@pytest.fixture
def scope(issue96):
    tree = uproot.open(issue96)["tree"]
    ns = reading.read_range(tree, ["jet1P4", "jet2P4", "jet1TrksChg"], issue96, 0, 100)
    ns["x"] = ak.values_astype(ns["jet1TrksChg"], np.float64)
    return ns


def test_the_corpus_is_live_under_the_old_eval(tmp_path, scope):
    """The first payload does create its file through the evaluator the suite used before (so refusing it matters)."""
    marker = tmp_path / "pwned"
    with pytest.raises(Exception):  # noqa: B017 - the file object is not an array; the harm is already done
        reading.to_numpy(_old_evaluate(_payloads(marker)[0], scope), "x", "f", 100)
    assert marker.exists()


@pytest.mark.parametrize("k", range(len(_payloads("p"))))
def test_an_attack_expression_is_refused_and_runs_nothing(tmp_path, scope, k):
    marker = tmp_path / "pwned"
    payload = _payloads(marker)[k]
    with pytest.raises(ExpressionError, match=r"^expression .*Allowed: ") as refused:
        reading.evaluate(payload, scope, "attack.root")
    assert "\n" not in str(refused.value)
    assert not marker.exists()


@pytest.mark.parametrize("bomb", BOMBS, ids=lambda b: b[:24])
def test_resource_bombs_are_refused_quickly(scope, bomb):
    with pytest.raises(ExpressionError, match=r"expression .*(larger than|at most|bits|not a number|from 0 to)"):
        reading.evaluate(bomb, scope, "attack.root")


def test_attacks_through_a_rootspec_are_refused_before_the_file_is_read(tmp_path, synthetic):
    marker = tmp_path / "pwned"
    for field, payload in (("features", {"x": _payloads(marker)[0]}), ("label", _payloads(marker)[2]),
                           ("selection", _payloads(marker)[13]), ("weight", f"open('{marker}', 'w')"),
                           ("splits", {"train": _payloads(marker)[3]}),
                           ("particles", {"p4": {"pt": _payloads(marker)[1], "eta": "Muon_eta", "phi": "Muon_phi",
                                                 "mass": "Muon_m"}})):
        spec = {**dict(files=synthetic, tree="events", label="is_signal", features={"pt": "j1_pt"}), field: payload}
        with pytest.raises(ExpressionError, match=r"^RootSpec: expression"):
            RootDataset(spec)
    with pytest.raises(TorchsciError, match="objects must be names"):
        RootDataset(dict(files=synthetic, tree="events", label="is_signal", features={"x": "{obj}_pt"},
                         objects=["().__class__.__base__"]))
    with pytest.raises(TorchsciError, match="numbered must be an integer from 1 to 1000"):
        RootDataset(dict(files=synthetic, tree="events", label="is_signal",
                         particles={"p4": {"pt": "j{i}_pt", "eta": "j{i}_eta", "phi": "j{i}_phi", "mass": "J_m"},
                                    "numbered": 10 ** 9}))
    assert not marker.exists()


def test_refusals_name_the_expression_the_part_and_what_is_allowed():
    with pytest.raises(ExpressionError) as exc:
        check("log(jet1P4.pt) + open('x')")
    message = str(exc.value)
    assert message.startswith("expression \"log(jet1P4.pt) + open('x')\" at 'open': 'open' is not a function")
    assert "functions: abs, absolute, all" in message and "Allowed: numbers, branch names" in message
    with pytest.raises(ExpressionError, match=r"attribute '__class__' starts with '_'"):
        check("x.__class__")
    with pytest.raises(ExpressionError, match=rf"nested \d+ levels deep; at most {MAX_DEPTH}"):
        check("-" * 100 + "x")
    with pytest.raises(ExpressionError, match="not valid Python syntax"):
        check("x ==")
    assert issubclass(ExpressionError, TorchsciError)


def test_a_wrong_value_is_a_data_error_naming_the_file(scope):
    with pytest.raises(DataError, match=r"^a.root: expression 'jet1TrksChg.pt' failed: .*no field named 'pt'"):
        evaluate("jet1TrksChg.pt", scope, "a.root")
    with pytest.raises(DataError, match=r"^a.root: expression 'unknown \+ 1': 'unknown' is not a branch"):
        evaluate("unknown + 1", scope, "a.root")


# ---------------------------------------------------------------------------------------------- checkpoints
def _edit_header(path, edit):
    with safe_open(str(path), framework="pt") as handle:
        meta = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    state = json.loads(meta["state"])
    edit(state)
    meta["state"] = json.dumps(state)
    save_file(tensors, str(path), metadata=meta)


def test_a_checkpoint_whose_header_holds_a_payload_is_refused_by_predict_and_load_model(tmp_path, synthetic, capsys):
    """End to end: a real checkpoint, its input_spec edited to hold the payload that ran `touch` on main."""
    splits = torchsci.registry.create_dataset(
        "physics/root", files=synthetic, tree="events", objects=["jet1"], label="{obj}_id == 21",
        features={"log_pt": "log({obj}_pt)", "nch": "{obj}_nch"}, splits={"train": "event % 2 == 0"})
    model = torchsci.create_model("physics/mlp", **splits.model_kwargs)
    run = torchsci.Trainer(max_epochs=1, max_steps=2, batch_size=16, device="cpu", run_dir=tmp_path / "run",
                           verbose=False, tensorboard=False, progress=False).fit(
        model, torchsci.registry.create_task("physics/tagging"), splits.train)
    ckpt = Path(run.last_checkpoint)
    out = tmp_path / "scores.root"
    assert main(["physics", "predict", str(ckpt), synthetic, "-o", str(out)]) == 0 and out.exists()
    out.unlink()
    marker = tmp_path / "pwned"
    for k, where in ((3, "features"), (0, "selection"), (7, "particles")):
        payload = _payloads(marker)[k]

        def edit(state, payload=payload, where=where):
            spec = state["meta"]["model_spec"]["kwargs"]["input_spec"]
            if where == "features":
                spec["features"]["log_pt"] = payload
            elif where == "selection":
                spec["selection"] = payload
            else:
                spec["particles"] = {"p4": payload}
        _edit_header(ckpt, edit)
        capsys.readouterr()
        assert main(["physics", "predict", str(ckpt), synthetic, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert str(ckpt) in err and "RootSpec: expression" in err and err.count("\n") == 1
        with pytest.raises(CheckpointError, match=r"header does not build model 'physics/mlp'.*RootSpec: expression"):
            torchsci.load_model(ckpt)
        assert not marker.exists() and not out.exists()


def test_a_checkpoint_naming_an_unregistered_model_or_odd_arguments_is_refused(tmp_path):
    model = torchsci.create_model("core/mlp", in_features=2, out_features=1)
    run = torchsci.Trainer(max_epochs=1, run_dir=tmp_path, verbose=False, tensorboard=False, progress=False).fit(
        model, torchsci.RegressionTask(), TensorDataset(torch.randn(4, 2), torch.randn(4, 1)))
    ckpt = Path(run.last_checkpoint)
    edits = {"os.system": lambda s: s["meta"]["model_spec"].update(name="os.system"),
             "kwargs": lambda s: s["meta"]["model_spec"].update(kwargs=["rm -rf"]),
             "pretrained": lambda s: s["meta"]["model_spec"]["kwargs"].update(pretrained="x"),
             "unknown argument": lambda s: s["meta"]["model_spec"]["kwargs"].update(__class__=1)}
    for name, edit in edits.items():
        _edit_header(ckpt, edit)
        with pytest.raises(CheckpointError, match=str(ckpt)):
            torchsci.load_model(ckpt)
        _edit_header(ckpt, lambda s: s["meta"].update(model_spec={"name": "core/mlp",
                                                                  "kwargs": {"in_features": 2, "out_features": 1}}))
        del name
    assert type(torchsci.load_model(ckpt)).__name__ == "MLP"
