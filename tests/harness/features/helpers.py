"""Shared by the tests of genbench.features (and the image suite's): tiny networks with the reference
files' interfaces, images, PNG folders, the CLI, a private statistics cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.features.cache import CACHE_ENV

torch = pytest.importorskip("torch")
#: images per folder in the FID tests
N = 24


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


def tiny_torchscript(path: Path, dim: int = 16, seed: int = 0, trusted: bool = True) -> Path:
    """A tiny TorchScript extractor, trusted in this process (as --trust-unknown would) unless not ``trusted``."""
    from genbench.features.weights import trust_file

    torch.jit.script(TinyNet(dim, seed).eval()).save(str(path))
    if trusted:
        trust_file(path)
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


def save_hf(folder: Path, splits: dict[str, np.ndarray]) -> Path:
    import datasets
    from PIL import Image

    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    dd = datasets.DatasetDict({name: datasets.Dataset.from_dict(
        {"image": [Image.fromarray(im) for im in images], "label": list(range(len(images)))}, features=features)
        for name, images in splits.items()})
    dd.save_to_disk(str(folder))
    return folder


def fresh_folder(tmp_path: Path, name: str = "f", n: int = 6) -> Path:
    return write_pngs(tmp_path / name, digit_images(40, n))


def cli_main(argv: list[str]) -> int:
    """``genbench`` on the command line, in this process."""
    from genbench import cli

    return cli.main(argv)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """No test writes to ~/.cache: the default cache lives in the test's tmp dir."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "default-cache"))


def tiny_dinov2(folder: Path, seed: int = 0, model_type_override: str | None = None, image_size: int = 224,
                hidden: int = 32, heads: int = 2) -> Path:
    """A random two-layer ``Dinov2Model`` (``hidden``-d, patch 14, trained size ``image_size``: 518 as the
    released models) saved with ``save_pretrained``."""
    import json

    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    cfg = Dinov2Config(hidden_size=hidden, num_hidden_layers=2, num_attention_heads=heads, mlp_ratio=2, patch_size=14,
                       image_size=image_size)
    Dinov2Model(cfg).eval().save_pretrained(str(folder))
    if model_type_override is not None:
        path = folder / "config.json"
        body = json.loads(path.read_text())
        body["model_type"] = model_type_override
        path.write_text(json.dumps(body))
    return folder


def dinov2_reference_features(folder: Path, images) -> np.ndarray:
    """EDM2's ``resize_mode='pil'`` / dgm-eval preprocessing and the final-norm CLS token, written
    here with PIL and transformers alone: (N, D) float64."""
    from PIL import Image
    from transformers import Dinov2Model

    model = Dinov2Model.from_pretrained(str(folder), local_files_only=True).eval()
    x = np.stack([np.uint8(Image.fromarray(im, "RGB").resize((224, 224), Image.Resampling.BICUBIC))
                  for im in images])
    x = torch.from_numpy(x).permute(0, 3, 1, 2).to(torch.float32) / 255
    x = (x - torch.tensor([0.485, 0.456, 0.406]).reshape(1, -1, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).reshape(1, -1, 1, 1)
    with torch.no_grad():  # Dinov2Model's last_hidden_state is after the final layer norm
        hidden = model(pixel_values=x).last_hidden_state
    return hidden[:, 0].double().numpy()
