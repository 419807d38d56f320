"""``dinov2:DIR`` and ``clip:ARCH:FILE:cmmd`` end to end from the CLI: FD_DINOv2, KID, precision /
recall / density / coverage and CMMD against the same computations written here with
transformers, open_clip, PIL and the ``prdc`` package."""
from __future__ import annotations

import json

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench.features.build import build_extractor
from genbench.features.extractor_clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from genbench.metrics import image as image_metrics
from genbench.features.weights import file_sha256
from tests.harness.features.helpers import (N, cli_main, digit_images, dinov2_reference_features, tiny_clip,
                                            tiny_dinov2, write_pngs)
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
prdc = pytest.importorskip("prdc")


@pytest.fixture(scope="module")
def dino(tmp_path_factory):
    root = tmp_path_factory.mktemp("dino")
    images_a, images_b = digit_images(0, N), digit_images(200, N, shift=12)
    return {"dir": tiny_dinov2(root / "dinov2"), "a": write_pngs(root / "a", images_a),
            "b": write_pngs(root / "b", images_b), "images_a": images_a, "images_b": images_b, "root": root}


def _json(capsys, argv) -> dict:
    assert cli_main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_fd_dinov2_kid_prdc_from_the_cli_equal_transformers_and_pil(dino, capsys):
    argv = ["fid", str(dino["a"]), str(dino["b"]), "--extractor", f"dinov2:{dino['dir']}", "--trust-unknown",
            "--metrics", "fd,kid,prdc", "--no-cache"]
    r = _json(capsys, argv)
    fa = dinov2_reference_features(dino["dir"], dino["images_a"])
    fb = dinov2_reference_features(dino["dir"], dino["images_b"])
    ref_fd = image_metrics.features_to_fid(fa, fb)
    assert r["fd_name"] == "fd_dinov2" and r["fd"] == r["fid"]
    assert_matches_reference(r["fd"], ref_fd, rtol=1e-5, what="FD_DINOv2 vs transformers + PIL")
    assert_matches_reference(r["kid"], image_metrics.features_to_kid(fa, fb, max_subset_size=N)[0], rtol=1e-4,
                             what="KID in DINOv2 features")
    theirs = prdc.compute_prdc(real_features=fb, fake_features=fa, nearest_k=5)
    capsys.readouterr()  # prdc prints its counts
    for name, key in (("precision", "prdc_precision"), ("recall", "prdc_recall"), ("density", "density"),
                      ("coverage", "coverage")):
        assert r[key] == pytest.approx(theirs[name], abs=1e-9), name
    assert r["prdc_k"] == 5 and "Naeem" in r["prdc_definition"]
    ident = r["identity"]
    assert ident["extractor"] == "dinov2" and ident["resize"] == "pil_bicubic" and ident["dim"] == 32
    assert "final layer norm" in ident["layer"]
    # the text output names it as EDM2 does, and the cache serves the second run
    assert cli_main(argv[:-1]) == 0
    assert capsys.readouterr().out.startswith("FD_DINOv2 ")
    assert cli_main(argv[:-1] + ["--metrics", "fd"]) == 0
    assert "FD_DINOv2" in capsys.readouterr().out


def test_fd_is_the_fid_code_path(data, capsys):
    """The same features through ``fd`` and ``fid``: one Fréchet implementation, one number."""
    r = _json(capsys, ["fid", str(data["a"]), str(data["b"]), "--extractor", f"torchscript:{data['net']}",
                       "--metrics", "fd"])
    assert r["fd_name"] == "fid" and r["fd"] == r["fid"] and r["metrics"] == ["fid"]


def test_dinov2_weights_gate_and_config_errors(dino, tmp_path, capsys, monkeypatch):
    argv = ["fid", str(dino["a"]), str(dino["b"]), "--extractor"]
    assert cli_main(argv + [f"dinov2:{dino['dir']}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown DINOv2 weights, sha256" in err and "--trust-unknown" in err and len(err.splitlines()) == 1
    vit = tiny_dinov2(tmp_path / "vit", model_type_override="vit")
    capsys.readouterr()  # save_pretrained's progress bar
    assert cli_main(argv + [f"dinov2:{vit}", "--trust-unknown"]) == 2
    err = capsys.readouterr().err.strip()
    assert "config.json: field model_type is 'vit', not 'dinov2'" in err and len(err.splitlines()) == 1
    hub_file = tmp_path / "dinov2_vitl14_pretrain.pth"
    hub_file.write_bytes(b"x")
    with pytest.raises(UserError, match="unknown DINOv2 weights"):  # gated before it is unpickled
        build_extractor(f"dinov2:{hub_file}")
    with pytest.raises(UserError, match="not a torch checkpoint"):
        build_extractor(f"dinov2:{hub_file}", trust_unknown=True)
    # the one trust rule of every extractor file: a hash listed in $GENBENCH_TRUSTED_SHA256 passes the gate
    monkeypatch.setenv("GENBENCH_TRUSTED_SHA256", file_sha256(hub_file))
    with pytest.raises(UserError, match="not a torch checkpoint"):
        build_extractor(f"dinov2:{hub_file}")
    monkeypatch.delenv("GENBENCH_TRUSTED_SHA256")
    with pytest.raises(UserError, match="no config.json"):
        build_extractor(f"dinov2:{tmp_path}")
    with pytest.raises(UserError, match="mode='clip' is not available"):
        build_extractor(f"dinov2:{dino['dir']}", trust_unknown=True, mode="clip")


def test_fewer_samples_than_k_plus_one_is_one_line(dino, tmp_path, capsys):
    few = write_pngs(tmp_path / "few", digit_images(0, 5))
    assert cli_main(["fid", str(few), str(dino["b"]), "--extractor", f"dinov2:{dino['dir']}", "--trust-unknown",
                     "--metrics", "prdc", "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert "k = 5 needs at least 6 images, got 5" in err and "--prdc-k" in err and len(err.splitlines()) == 1


def test_cmmd_from_the_cli_equals_open_clip_and_the_formula(dino, tmp_path, capsys):
    import open_clip
    import torch.nn.functional as F

    cfg, weights = tiny_clip(tmp_path)
    r = _json(capsys, ["fid", str(dino["a"]), str(dino["b"]), "--extractor", f"clip:{cfg}:{weights}:cmmd",
                       "--metrics", "cmmd,vendi", "--no-cache"])
    model = open_clip.create_model("tinyclip", pretrained=None, load_weights=False)
    open_clip.load_checkpoint(model, str(weights))
    model.eval()

    def embed(images):  # google-research cmmd: images in [0, 1], torch bicubic resize, CLIP mean/std, unit norm
        x = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255)
        x = F.interpolate(x, size=(32, 32), mode="bicubic", align_corners=False)
        x = (x - torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)
        with torch.no_grad():
            e = model.encode_image(x).double().numpy()
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    ea, eb = embed(dino["images_a"]), embed(dino["images_b"])

    def k(x, y):
        return np.exp(-((x[:, None] - y[None]) ** 2).sum(-1) / 200.0)

    ref = 1000 * (k(ea, ea).mean() + k(eb, eb).mean() - 2 * k(ea, eb).mean())
    assert_matches_reference(r["cmmd"], ref, rtol=1e-4, atol=1e-6, what="CMMD vs open_clip + the formula")
    assert r["cmmd"] > 0 and "sigma=10" in r["cmmd_convention"] and r["fd_name"] == "fd_clip"
    assert r["identity"]["resize"] == "torch_bicubic" and r["identity"]["embeddings"] == "L2-normalised"
    assert any("not CMMD's ViT-L/14@336" in w for w in r["warnings"])
    assert 1.0 <= r["vendi"] <= N

    # cmmd needs L2-normalised embeddings: the plain CLIP-FID extractor is refused in one line
    assert cli_main(["fid", str(dino["a"]), str(dino["b"]), "--extractor", f"clip:{cfg}:{weights}",
                     "--metrics", "cmmd"]) == 2
    assert "cmmd needs L2-normalised CLIP embeddings" in capsys.readouterr().err
    # CLIP weights of another architecture: one line naming the file
    with pytest.raises(UserError, match=r"tinyclip\.pt: not weights of open_clip ViT-B-32"):
        build_extractor(f"clip:ViT-B-32:{weights}:cmmd")


def test_feature_cap_samples_rows_but_fd_uses_every_image(data, capsys):
    argv = ["fid", str(data["a"]), str(data["b"]), "--extractor", f"torchscript:{data['net']}", "--no-cache"]
    full = _json(capsys, argv + ["--metrics", "prdc"])
    capped = _json(capsys, argv + ["--metrics", "prdc", "--feature-cap", "10", "--prdc-k", "3"])
    assert capped["fid"] == pytest.approx(full["fid"], rel=1e-9)
    assert (capped["prdc_n_fake"], capped["prdc_n_real"], capped["prdc_k"]) == (10, 10, 3)
    assert (full["prdc_n_fake"], full["prdc_n_real"]) == (N, N)


def _pytorch_bicubic_rows(x: np.ndarray, out_size: int, scale: float) -> np.ndarray:
    """PyTorch's bicubic resampling (A = -0.75, half-pixel centres, border clamped) along axis 0,
    with source coordinate (i + 0.5) / scale - 0.5: written out here, independently of F.interpolate."""
    def cubic(t):
        a = -0.75
        t = abs(t)
        return ((a + 2) * t - (a + 3)) * t * t + 1 if t <= 1 else (((t - 5) * t + 8) * t - 4) * a if t < 2 else 0.0

    out = np.zeros((out_size,) + x.shape[1:])
    for i in range(out_size):
        src = (i + 0.5) / scale - 0.5
        base = int(np.floor(src))
        for j in range(base - 1, base + 3):
            out[i] += cubic(src - j) * x[min(max(j, 0), len(x) - 1)]
    return out


def test_position_embeddings_are_the_torch_hub_models(tmp_path):
    """A model trained at 518 (37x37 patches) at 224 (16x16): the hub's scale factor (16 + 0.1) / 37,
    not transformers' size = 16; the features follow."""
    from transformers import Dinov2Model

    from genbench.features.extractor_dinov2 import hub_position_embeddings

    folder = tiny_dinov2(tmp_path / "d518", image_size=518)
    model = Dinov2Model.from_pretrained(str(folder), local_files_only=True).eval()
    pos = model.embeddings.position_embeddings.detach().double().numpy()[0]  # (1 + 37*37, 32)
    grid = pos[1:].reshape(37, 37, -1)
    scale = 16.1 / 37
    ref = _pytorch_bicubic_rows(_pytorch_bicubic_rows(grid, 16, scale).transpose(1, 0, 2), 16, scale).transpose(1, 0, 2)
    ours = hub_position_embeddings(model.embeddings.position_embeddings, 16).double().numpy()[0]
    assert ours.shape == (1 + 256, 32)
    np.testing.assert_allclose(ours[0], pos[0])
    np.testing.assert_allclose(ours[1:], ref.reshape(256, -1), rtol=1e-5, atol=1e-6)

    ex = build_extractor(f"dinov2:{folder}", trust_unknown=True)
    assert "scale factor (16 + 0.1) / 37" in ex.describe()["position_embeddings"]
    images = digit_images(0, 6)
    plain = dinov2_reference_features(folder, images)  # transformers' own interpolation (size = 16)
    # the hub's computation: the model with the independently interpolated embeddings, no interpolation left
    hub = Dinov2Model.from_pretrained(str(folder), local_files_only=True).eval()
    hub.embeddings.position_embeddings = torch.nn.Parameter(
        torch.from_numpy(np.concatenate([pos[:1], ref.reshape(256, -1)])[None]).float())
    from PIL import Image

    x = np.stack([np.uint8(Image.fromarray(im, "RGB").resize((224, 224), Image.Resampling.BICUBIC)) for im in images])
    x = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) \
        / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = hub(pixel_values=x).last_hidden_state[:, 0].double().numpy()
    got = ex.features(images)
    assert_matches_reference(got, expected, rtol=1e-4, atol=1e-5, what="DINOv2 features with the hub's embeddings")
    assert np.abs(got - plain).max() > 1e-4  # transformers' interpolation gives other features


def _hub_checkpoint(folder, path):
    """A torch.hub-format DINOv2 state dict (``blocks.N.attn.qkv``, ``ls1.gamma``, ``norm``...) made
    from a transformers save_pretrained folder by the inverse mapping, written here."""
    from transformers import Dinov2Model

    sd = Dinov2Model.from_pretrained(str(folder), local_files_only=True).state_dict()
    depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.layer."))
    hub = {"cls_token": sd["embeddings.cls_token"], "mask_token": sd["embeddings.mask_token"],
           "pos_embed": sd["embeddings.position_embeddings"],
           "patch_embed.proj.weight": sd["embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": sd["embeddings.patch_embeddings.projection.bias"],
           "norm.weight": sd["layernorm.weight"], "norm.bias": sd["layernorm.bias"]}
    for i in range(depth):
        h, t = f"blocks.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            hub[h + f"attn.qkv.{kind}"] = torch.cat([sd[t + f"attention.{p}_proj.{kind}"] for p in "qkv"])
            hub[h + f"attn.proj.{kind}"] = sd[t + f"attention.o_proj.{kind}"]
            for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                hub[h + f"{name}.{kind}"] = sd[t + f"{name}.{kind}"]
        hub[h + "ls1.gamma"] = sd[t + "layer_scale1.lambda1"]
        hub[h + "ls2.gamma"] = sd[t + "layer_scale2.lambda1"]
    torch.save(hub, str(path))
    return path


def test_torch_hub_checkpoint_gives_the_folders_features(tmp_path):
    """The official .pth layout mapped onto Dinov2Model: the same features as the folder it was made from."""
    from transformers import Dinov2Model

    folder = tiny_dinov2(tmp_path / "d518", image_size=518, seed=2, hidden=64, heads=1)  # 64-d heads, as released
    if "encoder.layer.0.attention.q_proj.weight" not in Dinov2Model.from_pretrained(
            str(folder), local_files_only=True).state_dict():
        pytest.skip("this transformers names the attention projections otherwise")
    pth = _hub_checkpoint(folder, tmp_path / "dinov2_vitt14_pretrain.pth")
    with pytest.raises(UserError, match="unknown DINOv2 weights, sha256"):
        build_extractor(f"dinov2:{pth}")
    from_file = build_extractor(f"dinov2:{pth}", trust_unknown=True)
    from_folder = build_extractor(f"dinov2:{folder}", trust_unknown=True)
    d = from_file.describe()
    assert d["architecture"]["hidden_size"] == 64 and d["architecture"]["image_size"] == 518
    assert "(16 + 0.1) / 37" in d["position_embeddings"]
    images = digit_images(10, 4)
    np.testing.assert_allclose(from_file.features(images), from_folder.features(images), rtol=1e-6, atol=1e-7)
    bad = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2)}, str(bad))
    with pytest.raises(UserError, match="not a DINOv2 torch.hub checkpoint"):
        build_extractor(f"dinov2:{bad}", trust_unknown=True)
