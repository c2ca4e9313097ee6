import pytest
import skhep_testdata


@pytest.fixture(scope="session")
def issue96():
    return skhep_testdata.data_path("uproot-issue96.root")


@pytest.fixture(scope="session")
def qg_spec(issue96):
    from torchsci_physics.datasets import QG_ISSUE96

    return {**QG_ISSUE96, "files": issue96}
