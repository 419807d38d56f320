"""FID and its train-split floor carry a bootstrap 95% interval by default (samples resampled,
reference fixed), with its cost in the convention; ``fid_bootstrap = 0`` turns it off."""
import pytest

from genbench.interfaces import Generator, Samples
from genbench.suite import SuiteContext
from genbench.suites.image_quality import ImageQuality


class Replay(Generator):
    name, paradigm, modality = "replay", "autoregressive", "image"

    def sample(self, n, *, seed, batch_size=64, condition=None, steps=None):
        from genbench import data

        return Samples(images=data.digits_arrays("val")[0][:n], nfe=n, nfe_per_sample=1.0)


@pytest.mark.parametrize("n_boot", [20, 0])
def test_fid_interval_by_default_and_off_when_asked(tmp_path, n_boot):
    assert ImageQuality.options["fid_bootstrap"] == 100
    options = {**ImageQuality.options, "n_samples": 60, "fid_bootstrap": n_boot}
    metrics = {m.metric: m for m in ImageQuality().run(Replay(), SuiteContext(seed=0, options=options,
                                                                              artifacts=tmp_path))}
    for name in ("fid", "fid_train_floor"):
        m = metrics[name]
        if n_boot:
            low, high = m.convention["ci"]
            assert low < high and m.stderr > 0 and m.convention["bootstrap"] == n_boot
            assert m.convention["ci_level"] == 0.95 and m.convention["bootstrap_seconds"] >= 0
            assert "reference fixed" in m.convention["bootstrap_method"]
        else:
            assert m.stderr is None and "ci" not in m.convention
