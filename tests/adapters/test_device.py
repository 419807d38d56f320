"""Host-device helpers and the zoo models' compile option (validated and recorded; the
compilation itself runs lazily at the first call, on the machine that uses it)."""
from __future__ import annotations

import pytest
import torch

from genbench.adapters.device import COMPILE_MODES, compile_module, to_device
from genbench.errors import UserError
from genbench.registry import build_adapter


def test_to_device_keeps_a_tensor_already_there():
    x = torch.arange(6)
    assert to_device(x, "cpu") is x and to_device(x, torch.device("cpu")) is x


@pytest.mark.parametrize("name", ["ar-digits", "masked-digits", "diffusion-digits"])
def test_compile_option_is_checked_and_recorded(name):
    assert "compile" not in build_adapter(name).describe()  # eager: the description is unchanged
    compiled = build_adapter(name, compile="reduce-overhead")
    assert compiled.describe()["compile"] == "reduce-overhead"
    with pytest.raises(UserError, match=rf"{name}: option compile='fast' must be one of default, reduce-overhead"):
        build_adapter(name, compile="fast")


def test_compile_module_leaves_eager_modules_alone():
    net = torch.nn.Linear(2, 2)
    forward = net.forward
    assert compile_module(net, None, "x") is None and net.forward == forward
    assert set(COMPILE_MODES) == {"default", "reduce-overhead", "max-autotune"}
