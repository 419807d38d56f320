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


@pytest.mark.parametrize("name", ["ar-digits", "masked-digits", "diffusion-digits", "ar-kjv", "masked-kjv"])
def test_zoo_likelihoods_read_nothing_back_per_batch(name):
    """The zoo models' likelihood loops read no value back from the device while they run (on an
    accelerator each read would hold the host until the device caught up): counted here on the
    CPU, over many batches (tests/host_reads.py)."""
    from genbench import data
    from tests.host_reads import HostReads

    g = build_adapter(name, eval_batch_size=4)
    if g.modality == "image":
        batch = data.digits_arrays("test")[0][:16]
    else:
        book = data.kjv_texts("test")[0]
        batch = [book[i * 300: (i + 1) * 300] for i in range(6)]
    g.log_likelihood(batch[:2], seed=0)  # first-call set-up out of the count
    with HostReads() as reads:
        g.log_likelihood(batch, seed=0)
    # one copy to the host at the end of the call, not one per batch (16 images or 6 texts in
    # batches of 4)
    assert reads.count == 0 and reads.copies <= 1, (reads.ops, reads.where)
