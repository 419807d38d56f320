"""token-ar, token-masked and hf-imagegpt: exact likelihoods against the models' own losses and
token-by-token scoring, the KV cache changes nothing, classifier-free guidance by logit mixing,
the LlamaGen conversion against an independent LlamaGen forward pass, layout errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from genbench.adapters import convert_llamagen
from genbench.errors import UserError
from genbench.registry import build_adapter
from tests.adapters import image_checkpoints as ic


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    return {"tar": ic.token_ar(root / "tar"), "tmask": ic.token_masked(root / "tmask"),
            "igpt": ic.imagegpt(root / "igpt"), "root": root}


def test_token_ar_likelihood_is_the_token_by_token_sum_and_the_cache_changes_nothing(ck):
    g = build_adapter(f"token-ar:{ck['tar']}", top_k=6, guidance_scale=2.0)
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    ll = g.log_likelihood(images)
    codes = g.images_to_codes(images)
    null = 16 + 3  # class_token + null_class
    for i in range(3):  # one position at a time, softmax over the 16 codes only
        seq = [null]
        total = 0.0
        for c in codes[i].tolist():
            with torch.no_grad():
                logits = g.model(input_ids=torch.tensor([seq])).logits[0, -1, :16].double()
            total -= float(torch.log_softmax(logits, -1)[c])
            seq.append(c)
        assert ll.nll[i] == pytest.approx(total, rel=1e-5)
    assert ll.unit == "token" and list(ll.units) == [16.0] * 3 and ll.kind.value == "exact"
    labels = np.array([0, 2, 1])
    a = g.sample(3, seed=1, condition=labels)
    b = g.with_options(kv_cache=False).sample(3, seed=1, condition=labels)
    assert np.array_equal(a.images, b.images) and a.nfe_per_sample == 32
    # sampling and scoring build no autograd graph (memory and time an evaluation never needs)
    from genbench.adapters import raster

    u = torch.full((1, 16), 0.5, dtype=torch.float64)
    assert raster.raster_sample(g.model, g.prefix(labels[:1], 1), u, 16).is_inference()
    assert raster.raster_nll(g.model, g.null_prefix(1), codes[:1], 16).is_inference()


def test_guidance_mixes_conditional_and_null_logits(ck, monkeypatch):
    from genbench.adapters import raster

    seen = []
    real = raster.logits_to_ids

    def spy(logits, u, temperature):
        seen.append(logits.clone())
        return real(logits, u, temperature)

    monkeypatch.setattr(raster, "logits_to_ids", spy)
    g = build_adapter(f"token-ar:{ck['tar']}", guidance_scale=3.0)
    g.sample(1, seed=0, condition=np.array([1]))
    first = seen[0][0]
    with torch.no_grad():
        cond = g.model(input_ids=torch.tensor([[16 + 1]])).logits[0, -1, :16]
        null = g.model(input_ids=torch.tensor([[16 + 3]])).logits[0, -1, :16]
    torch.testing.assert_close(first.float(), null + 3.0 * (cond - null), rtol=1e-5, atol=1e-5)


def test_imagegpt_likelihood_is_the_cross_entropy_of_its_colour_tokens(ck):
    g = build_adapter(f"hf-imagegpt:{ck['igpt']}")
    grey = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 1), dtype=np.uint8)
    ll = g.log_likelihood(grey)
    tokens = g.images_to_tokens(np.repeat(grey, 3, axis=-1))
    ids = torch.cat([torch.full((2, 1), g.model.config.vocab_size - 1), tokens], dim=1)
    for i in range(2):
        with torch.no_grad():  # 64 positions read SOS + the first 63 tokens; its head has no SOS output
            logits = g.model(input_ids=ids[i: i + 1, :64]).logits[0]
        assert logits.shape == (64, 16)
        nll = torch.nn.functional.cross_entropy(logits, ids[i, 1:], reduction="sum")
        assert ll.nll[i] == pytest.approx(float(nll), rel=1e-5)
    assert ll.unit == "token" and ll.info["grey_input"] == "replicated to RGB"


def test_token_masked_elbo_is_mdlms_and_batch_independent(ck):
    g = build_adapter(f"token-masked:{ck['tmask']}", mc_samples=8)
    images = np.random.default_rng(2).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    ll = g.log_likelihood(images, seed=3)
    parts = np.concatenate([g.log_likelihood(images[:2], seed=3).nll, g.log_likelihood(images[2:], seed=3, start=2).nll])
    np.testing.assert_allclose(parts, ll.nll, rtol=1e-6)
    assert ll.kind.value == "upper_bound" and ll.mc_samples == 8 and (ll.stderr > 0).all()
    # a bound on 16 codes of 16 values: above 0, and near log(16) per code for a random model
    assert (ll.nll > 0).all() and abs(ll.nll.mean() / 16 - math.log(16)) < 1.0
    s = g.with_options(steps=2, order="random").sample(4, seed=0)
    assert s.nfe_per_sample == 2 and s.info["sampler"].startswith("genbench.adapters.mdlm.masked_sample")


def test_token_masked_likelihood_grid_in_parts_is_its_elbo(ck):
    """Split across torchrun ranks by (image, Monte Carlo sample), the parts of token-masked's
    grid give its log_likelihood, which is mdlm.sequences_to_elbo of its codes."""
    from genbench.adapters import mdlm

    g = build_adapter(f"token-masked:{ck['tmask']}", mc_samples=4)
    images = np.random.default_rng(5).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    ll = g.log_likelihood(images, seed=1, start=7)
    grid = g.likelihood_grid(images, seed=1, start=7)
    assert (grid.rows, grid.mc_samples) == (3, 4)
    parts = np.concatenate([grid.terms(a, b) for a, b in [(0, 5), (5, 6), (6, 6), (6, 12)]])  # cuts across rows
    split = grid.to_likelihood(parts.reshape(3, 4))
    np.testing.assert_allclose(split.nll, ll.nll, rtol=1e-6)  # float32 forwards of other batch shapes
    np.testing.assert_allclose(split.stderr, ll.stderr, rtol=1e-5)
    prefix = g.null_prefix(1)
    want, want_se = mdlm.sequences_to_elbo(lambda ids: g._logits(ids, prefix.expand(len(ids), -1)),
                                           g.images_to_codes(images), g.mask_token, mc_samples=4, seed=1,
                                           row_keys=[(7 + i,) for i in range(3)])
    np.testing.assert_allclose(ll.nll, want, rtol=1e-6)
    np.testing.assert_allclose(ll.stderr, want_se, rtol=1e-5)


@pytest.mark.parametrize("kind", ["token-ar", "token-masked"])
def test_a_vq_that_decodes_from_indices_gives_the_same_images(kind, tmp_path):
    """aMUSEd's VQ decodes code indices itself (``lookup_from_codebook``); the adapters must hand
    it indices, and get the images the same weights give from the codebook entries."""
    import diffusers

    build = ic.token_ar if kind == "token-ar" else ic.token_masked
    g = build_adapter(f"{kind}:{build(tmp_path / 'lookup', lookup=True)}")
    assert g.vq.config.lookup_from_codebook
    plain = diffusers.VQModel.from_pretrained(build(tmp_path / "plain") / "vq")  # same seed: same weights
    assert not plain.config.lookup_from_codebook
    codes = torch.from_numpy(np.random.default_rng(4).integers(0, 16, (3, 16)))
    with torch.no_grad():
        entries = plain.quantize.get_codebook_entry(codes.reshape(-1), (3, 4, 4, 4))
        want = plain.decode(entries, force_not_quantize=True).sample
    want = np.clip(np.rint(127.5 * want.permute(0, 2, 3, 1).double().numpy() + 127.5), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(g.codes_to_images(codes), want)
    # and the whole path runs: sampled images decode, images encode back to codes of the codebook
    s = g.sample(2, seed=0, steps=2) if kind == "token-masked" else g.sample(2, seed=0)
    assert s.images.shape == (2, 8, 8, 3) and s.images.dtype == np.uint8
    assert g.images_to_codes(s.images).max() < 16


def test_layout_errors_name_the_adapter_and_file(ck, tmp_path):
    import shutil

    broken = tmp_path / "b"
    shutil.copytree(ck["tmask"], broken)
    spec = json.loads((broken / "genbench.json").read_text())
    spec.pop("mask_token")
    (broken / "genbench.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match=r"token-masked:.*genbench.json has no 'mask_token'"):
        build_adapter(f"token-masked:{broken}")
    (broken / "genbench.json").write_text(json.dumps({**spec, "gird": [4, 4]}))
    with pytest.raises(UserError, match=r"token-masked: .*unknown key\(s\) \['gird'\]"):
        build_adapter(f"token-masked:{broken}")
    shutil.rmtree(broken / "transformer")
    with pytest.raises(UserError, match=r"token-masked: .*no transformer/"):
        build_adapter(f"token-masked:{broken}")
    with pytest.raises(UserError, match="token-ar: folder /nowhere does not exist"):
        build_adapter("token-ar:/nowhere")


# --- LlamaGen -> token-ar ---------------------------------------------------------------------------
def _fake_llamagen(dim=32, heads=2, layers=2, codes=16, classes=3, hidden=96, seed=0):
    g = torch.Generator().manual_seed(seed)

    def w(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    sd = {"tok_embeddings.weight": w(codes, dim), "cls_embedding.embedding_table.weight": w(classes + 1, dim),
          "norm.weight": 1 + w(dim), "output.weight": w(codes, dim)}
    for i in range(layers):
        sd.update({f"layers.{i}.attention.wqkv.weight": w(3 * dim, dim), f"layers.{i}.attention.wo.weight": w(dim, dim),
                   f"layers.{i}.feed_forward.w1.weight": w(hidden, dim),
                   f"layers.{i}.feed_forward.w3.weight": w(hidden, dim),
                   f"layers.{i}.feed_forward.w2.weight": w(dim, hidden),
                   f"layers.{i}.attention_norm.weight": 1 + w(dim), f"layers.{i}.ffn_norm.weight": 1 + w(dim)})
    return sd


def _llamagen_logits(sd, label: int, codes: list[int], heads: int, grid: int, base: float = 10000.0):
    """LlamaGen's GPT forward pass (c2i, one class token), written from its description:
    complex (interleaved-pair) 2-D rotary embedding, the class position's rotation all zeros."""
    dim = sd["tok_embeddings.weight"].shape[1]
    d = dim // heads
    x = torch.cat([sd["cls_embedding.embedding_table.weight"][label][None], sd["tok_embeddings.weight"][codes]])
    n = len(x)
    f = base ** (-torch.arange(0, d // 2, 2).float() / (d // 2))
    rows = []
    for p in range(n):
        if p == 0:
            rows.append(torch.zeros(d // 2, dtype=torch.complex64))
        else:
            r, c = divmod(p - 1, grid)
            rows.append(torch.polar(torch.ones(d // 2), torch.cat([r * f, c * f])))
    rot = torch.stack(rows)  # (n, d/2) complex

    def rope(t):  # (n, heads, d)
        z = torch.view_as_complex(t.reshape(n, heads, d // 2, 2).contiguous())
        return torch.view_as_real(z * rot[:, None]).reshape(n, heads, d)

    def rms(t, wgt):
        return t * torch.rsqrt((t * t).mean(-1, keepdim=True) + 1e-5) * wgt

    mask = torch.full((n, n), float("-inf")).triu(1)
    layer = 0
    while f"layers.{layer}.attention.wqkv.weight" in sd:
        p = f"layers.{layer}."
        h = rms(x, sd[p + "attention_norm.weight"])
        q, k, v = (h @ sd[p + "attention.wqkv.weight"].T).split(dim, dim=-1)
        q, k, v = rope(q.view(n, heads, d)), rope(k.view(n, heads, d)), v.view(n, heads, d)
        att = torch.softmax(torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(d) + mask, -1)
        x = x + torch.einsum("hij,jhd->ihd", att, v).reshape(n, dim) @ sd[p + "attention.wo.weight"].T
        h = rms(x, sd[p + "ffn_norm.weight"])
        ff = torch.nn.functional.silu(h @ sd[p + "feed_forward.w1.weight"].T) * (h @ sd[p + "feed_forward.w3.weight"].T)
        x = x + ff @ sd[p + "feed_forward.w2.weight"].T
        layer += 1
    return rms(x, sd["norm.weight"]) @ sd["output.weight"].T


def test_llamagen_conversion_reproduces_its_logits(ck, tmp_path):
    sd = _fake_llamagen()
    torch.save({"model": sd}, tmp_path / "c2i_fake.pt")
    out = convert_llamagen.convert(tmp_path / "c2i_fake.pt", ck["tar"] / "vq", tmp_path / "converted", heads=2,
                                   image_size=8, downsample=2)
    spec = json.loads((out / "genbench.json").read_text())
    assert spec["rope_2d"] == {"prefix": 1, "base": 10000.0} and (spec["class_token"], spec["null_class"]) == (16, 3)
    g = build_adapter(f"token-ar:{out}", guidance_scale=1.5)
    codes = [3, 7, 1, 0, 15, 9, 2, 2, 8, 4, 11, 5, 6, 13, 12]
    with torch.no_grad():
        ours = g.model(input_ids=torch.tensor([[16 + 2] + codes])).logits[0, :, :16]
    torch.testing.assert_close(ours, _llamagen_logits(sd, 2, codes, heads=2, grid=4), rtol=1e-4, atol=1e-4)
    s = g.sample(2, seed=0, condition=np.array([0, 2]))
    assert s.images.shape == (2, 8, 8, 3) and s.nfe_per_sample == 32
    with pytest.raises(UserError, match="give --model"):
        convert_llamagen.convert(tmp_path / "c2i_fake.pt", ck["tar"] / "vq", tmp_path / "x")


def test_llamagen_converter_on_a_missing_or_unreadable_checkpoint_is_one_line(ck, tmp_path, capsys):
    """``python -m genbench.adapters.convert_llamagen`` (the README's command): a --gpt that does not
    exist or is not a torch file is one line on stderr, exit 2, nothing written (was a traceback)."""
    bad = tmp_path / "c2i_text.pt"
    bad.write_text("not a checkpoint")
    for gpt, words in ((tmp_path / "missing.pt", "no such file"), (bad, "not a torch checkpoint")):
        argv = ["--gpt", str(gpt), "--model", "GPT-L", "--vq", str(ck["tar"] / "vq"), "--out", str(tmp_path / "o")]
        assert convert_llamagen.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("convert_llamagen: error: --gpt") and words in err and "\n" not in err
        assert not (tmp_path / "o").exists()
