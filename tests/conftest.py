import os

# Tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pytest  # noqa: E402

from tests import fakes  # noqa: E402

fakes.register()


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """The models in the tests are tiny: on a 2-core, busy CI machine a second intra-op thread
    costs more in waiting than it saves (up to ~100x slower for the tiny HF models)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fake_generators():
    return [fakes.FakeAR(), fakes.FakeMasked(), fakes.FakeDiffusion()]
