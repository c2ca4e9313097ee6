"""AOTInductor: one package (a minute of C++ compilation, shared by the tests here), run from Python and from C++."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.utils

import torchsci
from torchsci.export import load_exported

CPP_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cpp"


@pytest.fixture(scope="module")
def mlp_package(tmp_path_factory):
    """core/mlp exported once as an AOTInductor package, with the model it came from."""
    folder = tmp_path_factory.mktemp("aoti")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCHINDUCTOR_CACHE_DIR", str(folder / "inductor"))
        torch.manual_seed(0)
        model = torchsci.create_model("core/mlp", in_features=5, out_features=2).eval()
        result = torchsci.export(model, (torch.randn(3, 5),), format="aoti", path=folder)
    return model, result


def test_aoti_package_round_trips_with_parity(mlp_package):
    model, result = mlp_package
    assert result.path.name == "core-mlp.aoti.pt2"
    assert result.report.dynamic_dims == ["input 0 dim 0"]
    assert result.report.max_abs_diff < 1e-5 and len(result.report.checked_shapes) == 2
    x = torch.randn(9, 5)
    with torch.no_grad():
        torch.testing.assert_close(load_exported(result.path)(x), model(x), atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_cpp_runner_built_against_the_wheels_libtorch_matches_python(mlp_package, tmp_path):
    """examples/cpp: CMake + the LibTorch inside the torch wheel; no Python at inference."""
    model, result = mlp_package
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(CPP_EXAMPLE), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                    f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}"]
                   + (["-G", "Ninja"] if shutil.which("ninja") else []),
                   check=True, capture_output=True, text=True, timeout=300)
    done = subprocess.run(["cmake", "--build", str(build), "-j", "2"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    x = torch.randn(7, 5)
    x.numpy().astype("<f4").tofile(tmp_path / "input.f32")
    ran = subprocess.run([str(build / "aoti_runner"), str(result.path), str(tmp_path / "input.f32"), "7,5",
                          str(tmp_path / "output.f32")], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip() == "shape 7,2"
    from_cpp = torch.from_numpy(np.fromfile(tmp_path / "output.f32", dtype="<f4").reshape(7, 2))
    with torch.no_grad():
        torch.testing.assert_close(from_cpp, model(x), atol=1e-5, rtol=1e-4)
