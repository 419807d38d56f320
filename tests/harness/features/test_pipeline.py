"""The feature pipeline: worker processes give the very numbers of the in-process threads (folders,
npz batches, data sets, centre crops, mixed sizes, sFID); the accelerator's resize path, run on CPU
tensors, gives the host path's features to float32 rounding; errors still name the file; the
image-quality suite's records do not change with the pipeline."""
from __future__ import annotations

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench.features import device_batches, pipeline
from genbench.features.build import build_extractor
from genbench.features.extractor_inception import InceptionExtractor
from genbench.features.statistics import path_to_statistics
from tests.harness.features.helpers import digit_images, write_pngs
from tests.host_reads import HostReads
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, data):
    """A folder of PNGs of three sizes (one larger than a worker's slot for uint8 images)."""
    root = tmp_path_factory.mktemp("mixed")
    folder = write_pngs(root / "imgs", digit_images(0, 5))
    write_pngs(folder, digit_images(5, 3, size=48), prefix="mid")
    big = np.kron(digit_images(9, 1, size=80)[0], np.ones((8, 8, 1), np.uint8))  # 640x640: > 597x597
    write_pngs(folder, big[None], prefix="zz_big")
    return folder


def test_workers_give_the_numbers_of_threads(data, mixed, standin, tmp_path):
    net = f"torchscript:{data['net']}"
    for mode in ("clean", "legacy_pytorch"):
        threads = path_to_statistics(mixed, net, mode, use_cache=False, keep_features=True, workers=0, batch_size=4)
        procs = path_to_statistics(mixed, net, mode, use_cache=False, keep_features=True, workers=2, batch_size=4)
        np.testing.assert_array_equal(procs.features, threads.features)
        np.testing.assert_array_equal(procs.sigma, threads.sigma)
    # sFID's spatial features and legacy_tensorflow's runs of one size (uint8 images, one too big for its slot)
    path, _ = standin
    for mode in ("clean", "legacy_tensorflow"):
        ex = InceptionExtractor(path=path, trust_unknown=True, mode=mode)
        a = path_to_statistics(mixed, ex, use_cache=False, workers=0, batch_size=3)
        b = path_to_statistics(mixed, ex, use_cache=False, workers=2, batch_size=3)
        assert a.has_spatial and b.has_spatial
        np.testing.assert_array_equal(b.mu, a.mu)
        np.testing.assert_array_equal(b.sigma_s, a.sigma_s)
    # an ADM-style npz batch (arrays in memory), a saved data set (encoded rows) and ADM's centre crop
    npz = tmp_path / "samples.npz"
    np.savez(npz, arr_0=digit_images(0, 7, size=40))
    from tests.harness.features.helpers import save_hf

    saved = save_hf(tmp_path / "saved", {"test": digit_images(20, 6)})
    for source, kw in ((npz, {}), (f"hf:{saved}", {}), (npz, {"center_crop": 24})):
        a = path_to_statistics(source, net, use_cache=False, workers=0, **kw)
        b = path_to_statistics(source, net, use_cache=False, workers=2, **kw)
        np.testing.assert_array_equal(b.mu, a.mu)
        np.testing.assert_array_equal(b.sigma, a.sigma)


def test_resize_on_the_device_path_matches_the_host_path(data, mixed, standin):
    """What runs on CUDA (uint8 to the device, the matrix resize there), here on CPU tensors."""
    for mode in ("clean", "legacy_pytorch"):
        ex = build_extractor(f"torchscript:{data['net']}", mode=mode)
        host = path_to_statistics(mixed, ex, use_cache=False, keep_features=True, batch_size=4, workers=0)
        ex.device_resize = True
        assert pipeline.resize_on_device(ex)
        for workers in (0, 2):
            dev = path_to_statistics(mixed, ex, use_cache=False, keep_features=True, batch_size=4, workers=workers)
            assert_matches_reference(dev.features, host.features, rtol=1e-5, atol=1e-6,
                                     what=f"features, {mode} resize on tensors vs on the host")
    path, _ = standin
    ex = InceptionExtractor(path=path, trust_unknown=True)
    host = ex.outputs(digit_images(0, 4), spatial=True)
    ex.device_resize = True
    dev = ex.outputs(digit_images(0, 4), spatial=True)
    assert_matches_reference(dev["spatial"], host["spatial"], rtol=1e-5, atol=1e-6, what="spatial features")


def test_the_accelerator_code_path_on_cpu(data, mixed, monkeypatch):
    """The CUDA path (pinned double-buffered staging, non-blocking copies, features kept on the
    device until the end, the resize there) run with CPU stand-ins for pinning and events; it
    reads nothing back from the device per batch."""
    class Event:
        def record(self):
            pass

        def synchronize(self):
            pass

    ex = build_extractor(f"torchscript:{data['net']}")
    host = path_to_statistics(mixed, ex, use_cache=False, keep_features=True, batch_size=3, workers=0)
    for module in (pipeline, device_batches):  # where each looks it up (statistics_on_device: device_batches)
        monkeypatch.setattr(module, "_is_cuda", lambda device: True)
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: self)
    ex.device_resize = True
    for workers in (0, 2):
        dev = path_to_statistics(mixed, ex, use_cache=False, keep_features=True, batch_size=3, workers=workers)
        assert_matches_reference(dev.features, host.features, rtol=1e-5, atol=1e-6, what="staged, resized on tensors")
    # one read-back per stream (its finiteness check, at the end), however many batches: the host
    # never waits for the device inside the loop, kept features or streamed statistics alike
    for batch_size, keep in ((3, True), (1, True), (1, False)):
        with HostReads() as reads:
            path_to_statistics(mixed, ex, use_cache=False, keep_features=keep, batch_size=batch_size, workers=0)
        assert reads.count == 1, (batch_size, keep, reads.ops, reads.where)


def test_worker_errors_name_the_file_and_the_pool_goes_on(data, tmp_path):
    net = f"torchscript:{data['net']}"
    folder = write_pngs(tmp_path / "f", digit_images(0, 9))
    (folder / "img_004.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    with pytest.raises(UserError, match=r"img_004\.png.*corrupt"):
        path_to_statistics(folder, net, use_cache=False, workers=2, batch_size=2)
    (folder / "img_004.png").unlink()
    ex = build_extractor(net)
    calls = []

    def dies_on_the_second_batch(x):
        calls.append(len(x))
        if len(calls) == 2:
            raise RuntimeError("network died half way")
        return type(ex)._forward(ex, x)

    ex._forward = dies_on_the_second_batch
    with pytest.raises(RuntimeError, match="half way"):
        path_to_statistics(folder, ex, use_cache=False, workers=2, batch_size=2)
    # nothing left over from the failed jobs writes into the next one's buffers
    del ex._forward
    again = path_to_statistics(folder, ex, use_cache=False, workers=2, batch_size=2)
    np.testing.assert_array_equal(again.mu, path_to_statistics(folder, ex, use_cache=False, workers=0, batch_size=2).mu)
    assert again.n == 8
    with pytest.raises(UserError, match="uint8"):  # the check of each image runs in the workers too
        build_extractor(net).outputs_from_loaders([lambda: np.zeros((8, 8, 3), np.float32)] * 2, workers=0)


def test_image_quality_records_do_not_depend_on_the_pipeline(data, tmp_path, monkeypatch):
    """The suite's records are the same whether decoding runs on threads (the earlier pipeline)
    or in worker processes."""
    from genbench.store import deterministic_fields
    from genbench.suite import SuiteContext
    from genbench.suites.image_quality import ImageQuality
    from tests.suites.test_image_quality import CHUNK, CLASSES, PER_CLASS, ClassConditionalFake

    files = {"reference": data["b"], "net": data["net"]}
    options = {**ImageQuality.options, "reference": str(files["reference"]), "extractor": f"torchscript:{files['net']}",
               "extractor_mode": "clean", "num_classes": CLASSES, "samples_per_class": PER_CLASS,
               "n_samples": CLASSES * PER_CLASS, "sample_chunk": CHUNK, "save_png": False, "quantisation": "round",
               "batch_size": 8, "kid_subset_size": 1000}
    records = {}
    for workers in ("0", "2"):
        monkeypatch.setenv(pipeline.WORKERS_ENV, workers)
        ctx = SuiteContext(seed=0, options=options, artifacts=tmp_path / f"cell{workers}")
        records[workers] = [(m.metric, m.value, m.stderr, m.n,  # timings (``*_seconds``) aside
                             deterministic_fields({"convention": m.convention})["convention"])
                            for m in ImageQuality().run(ClassConditionalFake(), ctx)]
    assert records["0"] == records["2"] and {"fid", "kid", "precision", "recall"} <= {r[0] for r in records["0"]}


def test_channels_last_is_opt_in_and_recorded_as_layout(data, standin, tmp_path, capsys):
    """``--channels-last`` / ``set_channels_last``: NHWC inputs and weights, features equal to
    float32 rounding, ``layout`` in describe() and in compute_fid's result but not in the
    identity (caches and statistics files stay valid); extractors without it refuse it."""
    import json

    from genbench.features.build import extractor_identity
    from genbench.features.fid import compute_fid
    from tests.harness.features.helpers import cli_main

    path, _ = standin
    for ex in (build_extractor(f"torchscript:{data['net']}"), InceptionExtractor(path=path, trust_unknown=True)):
        before, identity = ex.outputs(digit_images(0, 3), spatial=ex.spatial_status() is None), extractor_identity(ex)
        assert "layout" not in ex.describe() and "layout" not in compute_fid(data["a"], data["b"], ex,
                                                                             use_cache=False)
        seen = []
        outputs = ex._tensor_outputs
        ex._tensor_outputs = lambda x, spatial: seen.append(x.is_contiguous(memory_format=torch.channels_last)) \
            or outputs(x, spatial)
        ex.set_channels_last()
        after = ex.outputs(digit_images(0, 3), spatial=ex.spatial_status() is None)
        assert seen and all(seen)
        for key in before:
            assert_matches_reference(after[key], before[key], rtol=1e-5, atol=1e-6, what=f"channels_last {key}")
        assert extractor_identity(ex) == identity and ex.describe()["layout"].startswith("channels_last")
        assert compute_fid(data["a"], data["b"], ex, use_cache=False)["layout"] == ex.describe()["layout"]
    assert cli_main(["fid", str(data["a"]), str(data["b"]), "--extractor", f"torchscript:{data['net']}",
                     "--channels-last", "--no-cache", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["layout"].startswith("channels_last")
    from tests.harness.features.helpers import tiny_dinov2

    dino = build_extractor(f"dinov2:{tiny_dinov2(tmp_path / 'dino')}", trust_unknown=True)
    with pytest.raises(UserError, match="no channels_last option"):
        dino.set_channels_last()
