"""The likelihood suite's image data: any named image set, bits/dim in the model's discretisation."""
from __future__ import annotations

import math

import pytest

from genbench import data
from genbench.adapters.autoregressive import ARDigits
from genbench.errors import UserError
from genbench.suite import SuiteContext
from genbench.suites.likelihood import Likelihood


def _run(dataset, tmp_path, **options):
    opts = {**Likelihood.options, "dataset": dataset, "max_examples": 20, "batch_size": 8, **options}
    return {m.metric: m for m in Likelihood().run(ARDigits(), SuiteContext(seed=0, options=opts, artifacts=tmp_path))}


def test_dataset_selects_the_images_and_the_record_states_the_levels(tmp_path):
    default = _run(None, tmp_path)
    val = _run("digits:val", tmp_path)
    assert default["bits_per_dim"].task == "digits:test" and val["bits_per_dim"].task == "digits:val"
    assert default["bits_per_dim"].value != val["bits_per_dim"].value  # other images, other number
    conv = val["bits_per_dim"].convention
    assert conv["levels"] == 17 and conv["split"] == "val" and "17 levels" in conv["discretisation"]
    assert val["baseline_uniform_bits_per_dim"].value == pytest.approx(math.log2(17))
    # the split given in the options when the name has none
    assert _run("digits", tmp_path, split="val")["bits_per_dim"].value == val["bits_per_dim"].value


@pytest.mark.skipif(data.fashion_mnist_available() is not None, reason="Fashion-MNIST not installed")
def test_images_a_model_cannot_score_are_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match=r"ar-digits: log_likelihood takes a non-empty uint8 array \(N, 8, 8, 1\)"):
        _run("fashion-mnist:test", tmp_path)
