import os

# Tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pytest  # noqa: E402

from tests import fakes  # noqa: E402

fakes.register()


@pytest.fixture
def fake_generators():
    return [fakes.FakeAR(), fakes.FakeMasked(), fakes.FakeDiffusion()]
