"""Every adapter's samples are keyed by (run seed, sample index): the same at any batch size,
independent between seeds (``genbench.adapters.sampling.example_generator``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genbench.adapters import sampling
from genbench.registry import build_adapter

from tests.adapters.test_hf import ckpt  # noqa: F401  (the tiny GPT-2 fixture)
from tests.adapters.test_hf_mdlm import _save as save_tiny_bert
from tests.adapters.test_hf_mdlm import _tokenizer as bert_tokenizer

N = 7
BATCH_SIZES = (1, 3, 7)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert-sampling"), bert_tokenizer())


ADAPTERS = {
    "ar-digits": {},
    "masked-digits": {"steps": 8},
    "masked-digits[random]": {"steps": 8, "order": "random"},
    "diffusion-digits": {"steps": 6},
    "diffusion-digits[ddim]": {"steps": 6, "sampler": "ddim"},
    "ar-kjv": {"length": 24},
    "masked-kjv": {"length": 24, "steps": 6},
    "hf-causal-lm": {"length": 12},
    "hf-masked-diffusion-lm": {"length": 8, "steps": 4},
}


def _adapter(name, request, **extra):
    options = {**ADAPTERS[name], **extra}
    base = name.split("[")[0]
    if base == "hf-causal-lm":
        base = f"{base}:{request.getfixturevalue('ckpt')}"
    elif base == "hf-masked-diffusion-lm":
        base = f"{base}:{request.getfixturevalue('tiny_bert')}"
    return build_adapter(base, **options)


def _draws(samples) -> np.ndarray:
    return samples.images if samples.images is not None else samples.tokens


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_samples_are_the_same_at_three_batch_sizes_and_independent_between_seeds(name, request):
    gen = _adapter(name, request)
    runs = [_draws(gen.sample(N, seed=3, batch_size=b).validate(N, gen.modality)) for b in BATCH_SIZES]
    for other in runs[1:]:
        np.testing.assert_array_equal(runs[0], other)
    # sample i of seed 4 is not sample i (nor i + 1) of seed 3: seeds do not share shifted noise
    other_seed = _draws(gen.sample(N, seed=4, batch_size=3))
    for shift in (0, 1):
        same = [np.array_equal(other_seed[i], runs[0][i + shift]) for i in range(N - shift)]
        assert not all(same), f"{name}: seed 4 reproduces seed 3 shifted by {shift}"
    assert sum(not np.array_equal(other_seed[i], runs[0][i]) for i in range(N)) >= N - 1


def test_example_generator_streams_are_independent_between_seeds_indices_and_names():
    def u(seed, index, stream="sample"):
        return torch.rand(4000, generator=sampling.example_generator(seed, index, stream=stream),
                          dtype=torch.float64).numpy()

    np.testing.assert_array_equal(u(0, 5), u(0, 5))               # deterministic
    np.testing.assert_array_equal(u(0, 5), u(np.int64(0), np.int64(5)))
    np.testing.assert_array_equal(u(0, (5,)), u(0, 5))             # an int is a one-element index
    rows = {"seed 0": u(0, 1), "seed 1": u(1, 1), "seed 1, index 0": u(1, 0), "seed 0, index 2": u(0, 2),
            "likelihood stream": u(0, 1, "likelihood"), "(1, 0)": u(0, (1, 0)), "(0, 1)": u(0, (0, 1))}
    names = list(rows)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            r = np.corrcoef(rows[names[a]], rows[names[b]])[0, 1]
            # independent uniforms: |r| ~ N(0, 1/4000), 5 sigma = 0.079
            assert abs(r) < 0.08, f"{names[a]} vs {names[b]}: correlation {r:.3f}"
            assert not np.allclose(rows[names[a]][:100], rows[names[b]][:100])
    # the uniforms of samples start..start+count-1 are those of their own generators
    block = sampling.examples_to_uniforms(2, 3, 4, (6,))
    for r in range(4):
        np.testing.assert_array_equal(block[r], torch.rand(6, generator=sampling.example_generator(2, 3 + r, stream="sample"),
                                                           dtype=torch.float64))
    with pytest.raises(ValueError, match="non-negative"):
        sampling.example_generator(-1, 0, stream="sample")
    with pytest.raises(ValueError, match="stream"):
        sampling.example_generator(0, 0, stream="")


# --- start: sample i of a call is sample start + i of the run ------------------------------
K, M = 2, 4  # sample(M, start=K) must be rows K..K+M-1 of sample(N)


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_a_call_from_start_k_draws_rows_k_of_a_call_from_zero(name, request):
    gen = _adapter(name, request)
    whole = gen.sample(N, seed=3, batch_size=3)
    part = gen.sample(M, seed=3, batch_size=2, start=K).validate(M, gen.modality)
    np.testing.assert_array_equal(_draws(part), _draws(whole)[K: K + M])
    if gen.modality == "text":
        assert part.texts == whole.texts[K: K + M]
    assert not np.array_equal(_draws(part), _draws(whole)[:M])  # not samples 0.. again


@pytest.fixture(scope="module")
def image_ck(tmp_path_factory):
    from tests.adapters import image_checkpoints as ic

    root = tmp_path_factory.mktemp("sampling-images")
    return {"ddpm8": ic.ddpm_pipeline(root / "ddpm8", size=8, channels=1, timesteps=8),
            "dit": ic.dit_pipeline(root / "dit", classes=5), "igpt": ic.imagegpt(root / "igpt"),
            "tar": ic.token_ar(root / "tar"), "tmask": ic.token_masked(root / "tmask")}


#: the image adapters for real checkpoints: (checkpoint, options); conditional ones are also
#: checked with condition=None (the default labels, (start + i) mod num_classes)
IMAGE_ADAPTERS = {
    "diffusers[ddpm]": ("ddpm8", {"steps": 3, "scheduler": "ddpm"}),
    "diffusers[dit]": ("dit", {"steps": 2, "guidance_scale": 2.0}),
    "hf-imagegpt": ("igpt", {"top_k": 8}),
    "token-ar": ("tar", {"guidance_scale": 1.5, "top_p": 0.9}),
    "token-masked": ("tmask", {"steps": 4}),
}


def _assert_same_images(a: np.ndarray, b: np.ndarray, what: str) -> None:
    # float rounding of batched convolutions may move a pixel at a rounding tie by one level
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, what


@pytest.mark.parametrize("name", list(IMAGE_ADAPTERS))
def test_image_adapters_draw_rows_k_of_a_call_from_zero_with_their_labels(name, image_ck):
    key, options = IMAGE_ADAPTERS[name]
    gen = build_adapter(f"{name.split('[')[0]}:{image_ck[key]}", **options)
    classes = getattr(gen, "num_classes", None)
    conditions = [None] if classes is None else [None, np.array([2, 0, 1, 1, 2, 0, 2], dtype=np.int64)]
    for labels in conditions:
        whole = gen.sample(N, seed=3, batch_size=3, condition=labels).images
        part = gen.sample(M, seed=3, batch_size=2, start=K,
                          condition=None if labels is None else labels[K: K + M]).validate(M, "image").images
        _assert_same_images(part, whole[K: K + M], f"{name}, labels {labels}")
        assert not np.array_equal(part, whole[:M])
    if classes is not None:  # the default labels follow the run's index: a call from K has labels K..
        default = gen.sample(M, seed=3, batch_size=2, start=K).images
        schedule = np.arange(K, K + M, dtype=np.int64) % classes
        np.testing.assert_array_equal(default, gen.sample(M, seed=3, batch_size=2, start=K, condition=schedule).images)
        if name != "token-masked":  # (the tiny random BERT's logits move by 4e-4 between labels: no flip)
            other = gen.sample(M, seed=3, batch_size=2, start=K, condition=np.arange(M, dtype=np.int64) % classes)
            assert not np.array_equal(other.images, default)


def test_template_and_fake_adapters_take_start():
    from genbench.adapters.template import UniformNoise
    from tests.fakes import FakeAR

    for gen in (UniformNoise(size=4), FakeAR()):
        whole = gen.sample(N, seed=3, batch_size=3).images
        np.testing.assert_array_equal(gen.sample(M, seed=3, batch_size=2, start=K).images, whole[K: K + M])


@pytest.mark.parametrize("name", list(ADAPTERS) + list(IMAGE_ADAPTERS))
def test_sampling_reads_nothing_back_per_step(name, request):
    """One batch of samples reads back from the device only at its end, never per step (on an
    accelerator a read per step holds the host until the device has caught up, every step: the
    speed suite would time the harness). Counted on the CPU (tests/host_reads.py): no value read
    through the dispatcher, and at most a few host copies, however many steps."""
    from tests.host_reads import HostReads

    def make(**extra):
        if name in IMAGE_ADAPTERS:
            key, options = IMAGE_ADAPTERS[name]
            return build_adapter(f"{name.split('[')[0]}:{request.getfixturevalue('image_ck')[key]}",
                                 **options, **extra)
        return _adapter(name, request, **extra)

    variants = [make()]
    if getattr(variants[0], "kv_cache", False):  # also without the key/value cache: the whole prefix each step
        variants.append(make(kv_cache=False))
    for g in variants:
        g.sample(2, seed=0, batch_size=2)  # first-call set-up (compilation, caches) out of the count
        with HostReads() as reads:
            g.sample(4, seed=0, batch_size=4)
        # at least 4 steps each: a copy per step would exceed 3 (the batch's own: ids or images
        # to the host, the deferred NaN check)
        assert reads.copies <= 3, (reads.ops, reads.where)
        if not name.startswith("diffusers"):
            # (diffusers' schedulers branch on their timesteps, which genbench keeps on the host,
            # set_timesteps without a device: reads of host tensors, no wait for the device)
            assert reads.count == 0, (g.kv_cache if hasattr(g, "kv_cache") else None, reads.ops, reads.where)
