"""The fields' verbs (docs/plugins.md, item 5): real signatures, one vocabulary, lazy imports, renamed arguments."""

import importlib
import inspect
import pydoc
import subprocess
import sys
import warnings

import pytest

from torchsci.deprecation import renamed_arguments

# (package, verb, module that defines it); each package's verbs are in its __all__
VERBS = [
    ("torchsci_neuro", "segment", "torchsci_neuro.inference"),
    ("torchsci_neuro", "segment_study", "torchsci_neuro.study"),
    ("torchsci_chem", "predict", "torchsci_chem.inference"),
    ("torchsci_physics", "predict", "torchsci_physics.predict"),
    ("torchsci_physics", "predict_root", "torchsci_physics.predict"),
]
IDS = [f"{package}.{verb}" for package, verb, _ in VERBS]
# the shared vocabulary: name -> the default every verb gives it (None: a default of the verb's own, an int)
SHARED = {"model": None, "device": "auto", "batch_size": None, "progress": False}


def _verb(package: str, name: str):
    return getattr(importlib.import_module(package), name)


@pytest.mark.parametrize(("package", "name", "module"), VERBS, ids=IDS)
def test_a_verb_shows_its_real_parameters(package, name, module):
    verb = _verb(package, name)
    real = getattr(importlib.import_module(module), name)
    signature = inspect.signature(verb)
    assert signature == inspect.signature(real)
    kinds = {p.kind for p in signature.parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds and inspect.Parameter.VAR_POSITIONAL not in kinds
    assert "batch_size" in pydoc.render_doc(verb)  # help() lists the parameters, not (*args, **kwargs)
    assert name in importlib.import_module(package).__all__ and name in dir(importlib.import_module(package))


@pytest.mark.parametrize(("package", "name", "module"), VERBS, ids=IDS)
def test_every_verb_speaks_the_shared_vocabulary(package, name, module):
    parameters = inspect.signature(_verb(package, name)).parameters
    for argument, default in SHARED.items():
        assert argument in parameters, f"{package}.{name} has no {argument}="
        if argument == "model":
            continue  # positional in physics (nothing to score without it), a shipped name by default elsewhere
        if default is None:
            assert isinstance(parameters[argument].default, int), f"{package}.{name}({argument}=...)"
        else:
            assert parameters[argument].default == default, f"{package}.{name}({argument}=...)"
    assert "jobs" not in parameters and "input_path" not in parameters  # the old names, renamed below


def test_importing_a_field_package_imports_no_field_library():
    # chem and physics import nothing at all (not even torch); neuro imports the core's registry (torch)
    code = ("import sys, torchsci_chem, torchsci_physics; "
            "print(sorted(m for m in ('torch', 'rdkit', 'uproot', 'torchsci_chem.inference', "
            "'torchsci_physics.predict') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_renamed_argument_keeps_working_with_a_deprecation_warning():
    @renamed_arguments(jobs="n_jobs")
    def run(scans, *, n_jobs=1):
        return n_jobs

    with pytest.warns(DeprecationWarning, match=r"run\(jobs=\.\.\.\) is deprecated; use n_jobs="):
        assert run([], jobs=3) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run([], n_jobs=2) == 2
    with pytest.raises(TypeError, match="both jobs= .* and n_jobs="):
        run([], jobs=3, n_jobs=2)
    with pytest.raises(TypeError, match="has no parameter n_threads"):
        renamed_arguments(threads="n_threads")(run.__wrapped__)


def test_the_fields_renamed_arguments_still_work(tmp_path):
    from torchsci.errors import ConfigError, TorchsciError

    neuro = pytest.importorskip("torchsci_neuro")
    physics = pytest.importorskip("torchsci_physics")
    with pytest.warns(DeprecationWarning, match="use n_jobs="), pytest.raises(ConfigError, match="--jobs 0"):
        neuro.segment_study([tmp_path], tmp_path / "out", jobs=0)
    source = tmp_path / "events.root"
    source.write_bytes(b"")
    # the old name reaches the body: the output check refuses the file named by input_path=
    with pytest.warns(DeprecationWarning, match="use files="), pytest.raises(TorchsciError, match="events.root"):
        physics.predict_root(None, output=source, input_path=source)


def test_chem_predict_takes_device_and_progress(capsys):
    pytest.importorskip("rdkit")
    import torchsci
    import torchsci_chem

    model = torchsci.create_model("chem/dmpnn", hidden=8, depth=2, seed=0)  # untrained and tiny: fast
    quiet = torchsci_chem.predict(["CCO", "c1ccccc1O"], model=model, device="cpu", standardize=False)
    shown = torchsci_chem.predict(["CCO", "c1ccccc1O"], model=model, device="cpu", standardize=False,
                                  progress=True, batch_size=1)
    assert shown == pytest.approx(quiet, rel=1e-5)  # float32 sums differ in the last bits across batch sizes
    assert "molecules" in capsys.readouterr().err
