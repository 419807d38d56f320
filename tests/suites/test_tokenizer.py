"""The tokenizer suite on tiny diffusers VQModel / AutoencoderKL checkpoints saved here, on
vq-digits, on an image folder and on Fashion-MNIST; its metrics against scikit-image and the
``lpips`` package; the one-line errors for bad images, faulty adapters and bad weights."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import genbench  # noqa: F401  (makes torchvision importable before diffusers / lpips)
from genbench import cli, data
from genbench.errors import UserError
from genbench.interfaces import Tokenizer
from genbench.metrics import reconstruction as rec
from genbench.suite import SuiteContext
from genbench.suites.tokenizer import TokenizerReconstruction
from tests.harness.features.helpers import tiny_torchscript

TINY = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
            latent_channels=4, norm_num_groups=4, sample_size=64)
FASHION = data.fashion_mnist_available()


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    from diffusers import AutoencoderKL, VQModel

    root = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    VQModel(num_vq_embeddings=32, vq_embed_dim=4, **TINY).save_pretrained(root / "vq")
    AutoencoderKL(**TINY).save_pretrained(root / "kl")
    tiny_torchscript(root / "net.pt")
    return {"vq": root / "vq", "kl": root / "kl", "net": root / "net.pt"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Twelve smooth 64x64 RGB images as PNGs."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    for i in range(12):
        f = rng.uniform(1, 4, size=(3, 2))
        img = 127.5 + 120 * np.sin(2 * np.pi * (f[:, 0, None, None] * xx + f[:, 1, None, None] * yy + rng.uniform()))
        Image.fromarray(np.moveaxis(img, 0, -1).astype(np.uint8)).save(root / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def lpips_models(tmp_path_factory) -> dict[str, tuple]:
    """lpips.LPIPS models with random backbones and random positive heads (no download), and
    their state dicts saved to files."""
    import lpips

    root = tmp_path_factory.mktemp("lpips")
    out = {}
    for net in ("alex", "vgg"):
        torch.manual_seed(1)
        m = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False).eval()
        for lin in m.lins:
            torch.nn.init.uniform_(lin.model[1].weight, 0.0, 1.0)
        torch.save(m.state_dict(), root / f"{net}.pth")
        out[net] = (m, root / f"{net}.pth")
    return out


@pytest.fixture(scope="module")
def lpips_files(lpips_models) -> dict[str, Path]:
    return {net: path for net, (_, path) in lpips_models.items()}


def _pairs(shape, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, shape), 0, 255).astype(np.uint8)
    return a, b


# --- metrics against the reference implementations -----------------------------------------------
@pytest.mark.parametrize("shape", [(3, 8, 8, 1), (2, 28, 28, 1), (2, 16, 24, 3), (2, 5, 12, 1)])
def test_psnr_and_ssim_equal_scikit_image(shape):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a, b = _pairs(shape)
    x, y = a / 255.0, b / 255.0
    ref_psnr = [peak_signal_noise_ratio(p, q, data_range=1.0) for p, q in zip(x, y)]
    win = min(7, min(shape[1:3]) - (1 - min(shape[1:3]) % 2))
    for dr in (1.0, 2.0):
        ref_ssim = [structural_similarity(p, q, data_range=dr, channel_axis=-1, win_size=win) for p, q in zip(x, y)]
        np.testing.assert_allclose(rec.images_to_ssim(a, b, data_range=dr), ref_ssim, rtol=0, atol=1e-6)
    np.testing.assert_allclose(rec.images_to_psnr(a, b), ref_psnr, rtol=0, atol=1e-6)


def test_psnr_of_a_perfect_reconstruction_is_above_any_imperfect_one():
    a = np.zeros((2, 8, 8, 1), np.uint8)
    b = a.copy()
    b[1, 0, 0, 0] = 1  # one pixel one level off: the best an imperfect reconstruction can do
    perfect, one_level = rec.images_to_psnr(a, b)
    assert one_level == pytest.approx(10 * np.log10(255**2 * 64))  # 66.19 dB
    assert perfect == rec.psnr_of_perfect((8, 8, 1)) > one_level


def test_ssim_window_uses_the_shorter_side():
    assert rec.ssim_window(64, 5) == 5 and rec.ssim_window(6, 40) == 5 and rec.ssim_window(8, 8) == 7
    with pytest.raises(UserError, match="at least 3x3"):
        rec.ssim_window(2, 50)


def test_lpips_equals_the_lpips_package(lpips_models, lpips_files):
    for net, size in (("alex", 64), ("vgg", 32)):
        a, b = _pairs((3, size, size, 3), seed=2)
        ref_model = lpips_models[net][0]
        with torch.no_grad():
            t = [torch.from_numpy(v).permute(0, 3, 1, 2).float() / 127.5 - 1 for v in (a, b)]
            ref = ref_model(*t).view(-1).numpy()
        ours = rec.LPIPS(net, lpips_files[net]).distance(a, b)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)
        assert ours.min() > 0


def test_lpips_from_a_torchvision_backbone_and_a_heads_file(lpips_files, tmp_path):
    state = torch.load(lpips_files["alex"], weights_only=True)
    backbone = {f"features.{k.split('.', 3)[2]}.{k.split('.', 3)[3]}": v for k, v in state.items() if k.startswith("net.")}
    heads = {k: v for k, v in state.items() if k.startswith("lin") and not k.startswith("lins")}
    torch.save(backbone, tmp_path / "alexnet-owt.pth")
    torch.save(heads, tmp_path / "alex-heads.pth")
    a, b = _pairs((2, 32, 32, 3), seed=3)
    split = rec.LPIPS("alex", [tmp_path / "alexnet-owt.pth", tmp_path / "alex-heads.pth"]).distance(a, b)
    np.testing.assert_allclose(split, rec.LPIPS("alex", lpips_files["alex"]).distance(a, b), atol=1e-7)


def test_lpips_weights_of_the_wrong_shape_are_one_line_errors(lpips_files, tmp_path):
    with pytest.raises(UserError, match=r"alex\.pth: features\.0\.weight has shape .* LPIPS-vgg") as e:
        rec.LPIPS("vgg", lpips_files["alex"])
    assert "\n" not in str(e.value)
    state = torch.load(lpips_files["alex"], weights_only=True)
    state["lin2.model.1.weight"] = torch.zeros(1, 100, 1, 1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(UserError, match=r"bad\.pth: lin2\.model\.1\.weight has shape \(1, 100, 1, 1\)"):
        rec.LPIPS("alex", tmp_path / "bad.pth")
    with pytest.raises(UserError, match="no such file"):
        rec.LPIPS("alex", tmp_path / "missing.pth")


def test_code_statistics():
    codes = np.array([[[0, 0], [1, 3]]])
    hist = rec.codes_to_histogram(codes, 8)
    assert hist.tolist() == [2, 1, 0, 1, 0, 0, 0, 0]
    p = np.array([0.5, 0.25, 0.25])
    assert rec.histogram_to_perplexity(hist) == pytest.approx(np.exp(-(p * np.log(p)).sum()))


# --- the suite end to end ---------------------------------------------------------------------------
def _records(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    failed = [r["error"] for r in rows if r["status"] != "ok"]
    assert not failed, failed
    return {(r["adapter"].split(":")[0], r["metric"]): r for r in rows}


COMMON = ("psnr", "ssim", "lpips_alex", "lpips_vgg", "rfid")


def test_diffusers_vq_and_vae_on_an_image_folder_from_the_cli(ckpts, folder, lpips_files, tmp_path):
    out = tmp_path / "run"
    argv = ["run", "--suite", "tokenizer", "--adapter", f"diffusers-vq:{ckpts['vq']}",
            "--adapter", f"diffusers-vae:{ckpts['kl']}", "--dataset", str(folder), "--out", str(out),
            "--set", f"tokenizer.extractor='torchscript:{ckpts['net']}'",
            "--set", f"tokenizer.lpips_alex='{lpips_files['alex']}'", "--set", "tokenizer.chunk=5",
            "--set", "tokenizer.ssim_llamagen=true"]
    assert cli.main(argv) == 0
    recs = _records(out)
    for name in ("diffusers-vq", "diffusers-vae"):
        for metric in (*COMMON, "ssim_llamagen"):
            r = recs[(name, metric)]
            conv = r["convention"]
            assert r["n"] == 12 and conv["dataset"] == str(folder)
            assert conv["pixel_scaling"] == "x / 127.5 - 1 ([-1, 1])"
            assert conv["output_quantisation"].startswith("clamp(round(127.5 y + 127.5), 0, 255)")
            assert conv["tokenizer"]["kind"] == ("discrete" if name == "diffusers-vq" else "continuous")
        assert recs[(name, "ssim")]["convention"]["data_range"] == 1.0
        assert recs[(name, "ssim_llamagen")]["convention"]["data_range"] == 2.0
        assert recs[(name, "lpips_alex")]["value"] > 0
        assert recs[(name, "lpips_vgg")]["value"] is None
        assert recs[(name, "lpips_vgg")]["convention"]["status"] == "unavailable: no local weights"
        rfid = recs[(name, "rfid")]
        assert rfid["value"] > 0 and rfid["convention"]["extractor"].startswith("torchscript")
        assert "originals of" in rfid["convention"]["reference"]
        art = out / recs[(name, "psnr")]["artifacts"] / "reconstructions.png"
        assert art.is_file()
    vq = {m: recs[("diffusers-vq", m)] for m in ("codebook_usage", "code_perplexity", "tokens_per_image",
                                                 "bits_per_image")}
    assert vq["tokens_per_image"]["value"] == 32 * 32 and vq["bits_per_image"]["value"] == 32 * 32 * 5
    assert 0 < vq["codebook_usage"]["value"] <= 1 and 1 <= vq["code_perplexity"]["value"] <= 32
    assert recs[("diffusers-vae", "latent_channels")]["value"] == 4
    assert recs[("diffusers-vae", "latent_dims_per_image")]["convention"]["latent_shape"] == [4, 32, 32]

    # the suite's numbers are the adapter's reconstructions measured by the metric code
    from genbench.adapters.diffusers_tokenizers import DiffusersVQ
    from genbench.features.build import build_extractor
    from genbench.features.folder import load_image_folder
    from genbench.metrics import image as image_metrics

    images = load_image_folder(folder)
    tok = DiffusersVQ(str(ckpts["vq"]))
    recons = tok.decode(tok.encode(images))
    assert recs[("diffusers-vq", "psnr")]["value"] == pytest.approx(rec.images_to_psnr(images, recons).mean(), abs=1e-9)
    ex = build_extractor(f"torchscript:{ckpts['net']}")
    fid = image_metrics.statistics_to_fid(*image_metrics.features_to_statistics(ex.features(recons)),
                                          *image_metrics.features_to_statistics(ex.features(images)))
    assert recs[("diffusers-vq", "rfid")]["value"] == pytest.approx(fid, rel=1e-6)


def test_vae_posterior_sample_does_not_depend_on_batching(ckpts, folder):
    from genbench.adapters.diffusers_tokenizers import DiffusersVAE
    from genbench.features.folder import load_image_folder

    images = load_image_folder(folder)[:4]
    a = DiffusersVAE(str(ckpts["kl"]), sample=True, batch_size=4).encode(images)
    b = DiffusersVAE(str(ckpts["kl"]), sample=True, batch_size=1).encode(images[::-1].copy())[::-1]
    mean = DiffusersVAE(str(ckpts["kl"])).encode(images)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.abs(a - mean).max() > 1e-3
    c = DiffusersVAE(str(ckpts["kl"]), sample=True, seed=1).encode(images)
    assert np.abs(a - c).max() > 1e-3


def test_vq_digits_through_the_same_suite(tmp_path):
    ctx = SuiteContext(seed=0, options={**TokenizerReconstruction.options, "max_images": 60}, artifacts=tmp_path)
    from genbench.adapters.vq import VQDigits

    recs = {m.metric: m for m in TokenizerReconstruction().run(VQDigits(), ctx)}
    assert recs["psnr"].value > 20 and recs["ssim"].value > 0.9 and recs["rfid"].value >= 0
    assert recs["rfid"].convention["extractor"] == "digits-classifier"
    assert recs["tokens_per_image"].value == 16 and recs["bits_per_image"].value == 16 * 8
    assert recs["psnr"].convention["pixel_scaling"].startswith("nearest of the 17 grey levels")
    assert (tmp_path / "reconstructions.png").is_file()


@pytest.mark.skipif(FASHION is not None, reason=f"Fashion-MNIST not installed: {FASHION}")
def test_fashion_mnist_reads_the_debian_idx_files():
    images, labels = data.fashion_mnist_arrays("test")
    assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
    with pytest.raises(UserError, match="splits train, test"):
        data.fashion_mnist_arrays("val")
    # genbench fid and the image suites take it as a source too (grey replicated to RGB there)
    from genbench.features.sources import path_to_image_source

    src = path_to_image_source("fashion-mnist", grey="error", alpha="error")
    first = next(iter(src.chunks()))
    assert src.label == "fashion-mnist:test" and len(first) == 10000 and first[0]().shape == (28, 28, 3)


@pytest.mark.skipif(FASHION is not None, reason=f"Fashion-MNIST not installed: {FASHION}")
def test_diffusers_vq_on_fashion_mnist_from_the_cli(ckpts, tmp_path):
    out = tmp_path / "run"
    argv = ["run", "--suite", "tokenizer", "--adapter", f"diffusers-vq:{ckpts['vq']}", "--dataset",
            "fashion-mnist:test", "--out", str(out), "--set", "tokenizer.max_images=6",
            "--set", "tokenizer.resize='center_crop'", "--set", "tokenizer.grey='convert'",
            "--set", f"tokenizer.extractor='torchscript:{ckpts['net']}'"]
    assert cli.main(argv) == 0
    recs = _records(out)
    psnr = recs[("diffusers-vq", "psnr")]
    assert psnr["n"] == 6 and psnr["convention"]["dataset"] == "fashion-mnist:test"
    assert psnr["convention"]["resize"].startswith("center_crop to 64x64")
    assert psnr["convention"]["image_shape"] == [64, 64, 3]
    assert recs[("diffusers-vq", "rfid")]["value"] >= 0


def test_missing_fashion_mnist_is_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("GENBENCH_FASHION_MNIST", str(tmp_path))
    data.fashion_mnist_arrays.cache_clear()
    try:
        with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
            data.fashion_mnist_arrays("test")
    finally:
        data.fashion_mnist_arrays.cache_clear()


def test_idx_reader():
    raw = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 7, 8, 9, 10])
    assert data.idx_to_array(raw, "x").tolist() == [[[7, 8]], [[9, 10]]]
    with pytest.raises(UserError, match="not an unsigned-byte IDX"):
        data.idx_to_array(b"\x00\x00\x0d\x01", "x")


# --- one-line errors ---------------------------------------------------------------------------------
def _run_suite(tok, source, tmp_path, **options):
    ctx = SuiteContext(seed=0, options={**TokenizerReconstruction.options, "dataset": str(source),
                                        "extractor": "digits-classifier", **options}, artifacts=tmp_path)
    return list(TokenizerReconstruction().run(tok, ctx))


def test_a_misspelt_resize_or_grey_stops_the_run_before_anything_is_written(tmp_path, capsys):
    """resize and grey are checked with the run file (exit 2, no run directory), not inside the cell."""
    for option, choices in (("resize=squash", "['none', 'center_crop', 'bicubic']"),
                            ("grey=rgb", "['error', 'convert']")):
        out = tmp_path / option.partition("=")[0]
        assert cli.main(["run", "--suite", "tokenizer", "--adapter", "vq-digits", "--set", f"tokenizer.{option}",
                         "--out", str(out)]) == 2
        assert f"must be one of {choices}" in capsys.readouterr().err and not out.exists()


def test_images_of_the_wrong_size_name_the_adapter(ckpts, folder, tmp_path):
    from genbench.adapters.diffusers_tokenizers import DiffusersVQ

    tok = DiffusersVQ(str(ckpts["vq"]), resolution=32)
    with pytest.raises(UserError, match=r"^diffusers-vq: data .*: images are 64x64 but the tokenizer takes 32x32"):
        _run_suite(tok, folder, tmp_path)
    with pytest.raises(UserError, match="1 channel.*grey = \"convert\""):
        _run_suite(DiffusersVQ(str(ckpts["vq"])), "digits", tmp_path, resize="center_crop")


class _Faulty(Tokenizer):
    name = "faulty"
    codebook_size = 4
    channels = 1
    resolution = (8, 8)
    downsampling = 2

    def __init__(self, fault):
        self.fault = fault

    def encode(self, images):
        codes = np.zeros((len(images), 4, 4), np.int64)
        if self.fault == "codes":
            codes[0, 0, 0] = 4
        return codes

    def decode(self, codes):
        size = 6 if self.fault == "size" else 8
        return np.zeros((len(codes), size, size, 1), np.uint8)


def test_faulty_adapters_are_named(tmp_path):
    with pytest.raises(UserError, match=r"tokenizer faulty: encode returned codes from 0 to 4, outside the codebook"):
        _run_suite(_Faulty("codes"), "digits", tmp_path, max_images=10)
    with pytest.raises(UserError, match=r"tokenizer faulty: decode returned .* \(10, 6, 6, 1\) .* keep the image size"):
        _run_suite(_Faulty("size"), "digits", tmp_path, max_images=10)


def test_a_broken_checkpoint_is_a_one_line_error(ckpts, tmp_path):
    from genbench.adapters.diffusers_tokenizers import DiffusersVAE, DiffusersVQ

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((ckpts["vq"] / "config.json").read_text())
    with pytest.raises(UserError, match=r"^diffusers-vq: could not load .*broken as a VQModel"):
        DiffusersVQ(str(broken))
    with pytest.raises(UserError, match=r"holds a VQModel but diffusers-vae loads AutoencoderKLs; use diffusers-vq:DIR"):
        DiffusersVAE(str(ckpts["vq"]))


def test_a_failed_cell_records_the_one_line_error(ckpts, folder, tmp_path):
    out = tmp_path / "run"
    cli.main(["run", "--suite", "tokenizer", "--adapter", f"diffusers-vq:{ckpts['vq']}", "--dataset", "digits",
              "--out", str(out)])
    row = json.loads((out / "records.jsonl").read_text().splitlines()[0])
    assert row["status"] == "failed" and "\n" not in row["error"]
    assert row["error"].startswith("UserError: diffusers-vq: data digits:test: images have 1 channel")


class _Identity(Tokenizer):
    """A continuous tokenizer that returns the image as its latent, recording the batch sizes."""

    name = "identity"
    kind = "continuous"
    channels = 3

    def __init__(self):
        self.seen = []

    def encode(self, images):
        self.seen.append(len(images))
        return images.transpose(0, 3, 1, 2).astype(np.float32)

    def decode(self, latents):
        return latents.transpose(0, 2, 3, 1).astype(np.uint8)


def test_a_source_is_streamed_in_chunks(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (23, 8, 8, 1), dtype=np.uint8)
    images = np.repeat(grey, 3, axis=-1)  # RGB with equal channels, which the digits classifier reads
    np.savez(tmp_path / "batch.npz", arr_0=images)
    tok = _Identity()
    recs = {m.metric: m for m in _run_suite(tok, tmp_path / "batch.npz", tmp_path, chunk=5)}
    assert tok.seen == [5, 5, 5, 5, 3]
    assert recs["psnr"].n == 23 and recs["psnr"].value == pytest.approx(rec.psnr_of_perfect((8, 8, 3)))
    assert recs["psnr"].convention["exact_reconstructions"] == 23 and recs["ssim"].value == 1.0
    assert recs["rfid"].value == pytest.approx(0.0, abs=1e-4)  # 23 rows, 128-d: singular covariances
    assert recs["latent_dims_per_image"].value == 3 * 8 * 8


def test_an_hf_source_with_non_square_photos_is_centre_cropped(tmp_path):
    from tests.harness.features.helpers import save_hf

    rng = np.random.default_rng(4)
    photos = rng.integers(0, 256, (4, 20, 30, 3), dtype=np.uint8)  # 20x30: cropped to the tokenizer's 8x8
    save_hf(tmp_path / "ds", {"validation": photos})
    tok = _Identity()
    tok.resolution = (8, 8)
    recs = {m.metric: m for m in _run_suite(tok, f"hf:{tmp_path / 'ds'}:validation", tmp_path,
                                            resize="center_crop", extractor="auto")}
    conv = recs["psnr"].convention
    assert conv["dataset"].endswith(":validation") and conv["image_shape"] == [8, 8, 3]
    assert conv["resize"].startswith("center_crop to 8x8 (ADM") and recs["psnr"].n == 4
    assert recs["rfid"].convention["status"].startswith("unavailable") or recs["rfid"].value is not None
