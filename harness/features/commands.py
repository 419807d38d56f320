"""The CLI commands ``genbench fid``, ``genbench is`` and ``genbench stats``.

A ``PATH`` is any image source (``genbench.features.sources``) or a statistics ``.npz``
(``genbench.features.statistics``); results print with their convention
(``genbench.features.fid``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from genbench.errors import UserError
from genbench.features.build import extractor_identity
from genbench.features.cache import CACHE_ENV, default_cache_dir, write_statistics_npz
from genbench.features.decode_workers import WORKERS_ENV
from genbench.features.fid import METRICS, check_splits, compute_fid, compute_inception_score, parse_metrics
from genbench.features.statistics import path_to_statistics, resolve_extractor


def _add_common(p: argparse.ArgumentParser) -> None:
    from genbench.features.resize import RESIZE_MODES

    p.add_argument("--extractor", default="inception", help="inception, inception:FILE, torchscript:FILE, "
                   "clip:ARCH:FILE (clip:ARCH:FILE:cmmd: CMMD's variant), dinov2:DIR|FILE.pth or a registered name "
                   "(default inception)")
    p.add_argument("--mode", default=None, choices=list(RESIZE_MODES),
                   help="resize mode (default: the extractor's, clean for inception)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default cpu)")
    p.add_argument("--grey", default="error", choices=["error", "convert"],
                   help="a greyscale image: error (default) or convert (replicate the channel)")
    p.add_argument("--alpha", default="error", choices=["error", "drop"],
                   help="an image with transparency: error (default) or drop the alpha channel")
    p.add_argument("--center-crop", type=int, default=None, metavar="SIZE",
                   help="ADM's ImageNet preprocessing of the images first (BOX halvings, BICUBIC, centre crop)")
    p.add_argument("--trust-unknown", action="store_true",
                   help="accept Inception or DINOv2 weights whose sha256 is not known")
    p.add_argument("--channels-last", action="store_true",
                   help="run the network on channels_last (NHWC) inputs and weights (inception, torchscript; faster "
                        "convolutions on a GPU, float32 all the same: features equal to rounding; recorded as layout)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="decode in N worker processes (0: threads in this process; default: every core for "
                        f"large jobs on machines with more than 2 cores, or ${WORKERS_ENV})")


def _add_cache(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", default=None, help=f"statistics cache (default ~/.cache/genbench/stats, or ${CACHE_ENV})")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the statistics cache")
    p.add_argument("--npz-prefer", default="stats", choices=["stats", "images"],
                   help="an npz with both statistics and arr_0 images: use which (default stats)")


def _fmt_n(n) -> str:
    return "?" if n is None else str(n)


def result_to_text(result: dict[str, Any]) -> str:
    """``compute_fid``'s result as lines of text: each number with its convention and counts."""
    sha = (result.get("weights_sha256") or "")[:12]
    name = _headline(result.get("fd_name", "fid"))
    lines = [f"{name} {result['fid']:.6g}  ({result['extractor']} {sha} mode={result['mode']}, "
             f"n_a={_fmt_n(result['n_a'])}, n_b={_fmt_n(result['n_b'])}, sqrtm={result['sqrtm']})"]
    if result.get("fid_ci"):
        low, high = result["fid_ci"]
        lines.append(f"  {result['fid_ci_level']:.0%} bootstrap interval [{low:.6g}, {high:.6g}] "
                     f"({result['fid_bootstrap']} replicates of the samples, reference fixed)")
    if result.get("sfid") is not None:
        lines.append(f"sFID {result['sfid']:.6g}  ({result['sfid_layer']}, {result['sfid_dim']}-d, "
                     f"n_a={_fmt_n(result['n_a'])}, n_b={_fmt_n(result['n_b'])})")
    else:
        lines.append(f"sFID n/a: {result['sfid_note'].removeprefix('no sFID: ')}")
    if "is" in result:
        lines.append(f"IS {result['is']:.6g} +- {result['is_std']:.3g}  (of {result['a']}, {result['is_splits']} "
                     f"parts, n={result['is_n']}; {result['is_convention']})")
    if "kid" in result:
        lines.append(f"KID {result['kid']:.6g} +- {result['kid_stderr']:.3g} (standard error over draws of the "
                     f"samples; std over subsets {result['kid_std']:.3g})  ({result['kid_subsets']} subsets of "
                     f"{result['kid_subset_size']}, n_a={result['kid_n_a']}, n_b={result['kid_n_b']})")
    if "precision" in result:
        lines.append(f"precision {result['precision']:.4f}, recall {result['recall']:.4f}  (k={result['pr_k']}, "
                     f"{result['pr_n_fake']} samples against {result['pr_n_real']} reference images)")
    if "density" in result:
        lines.append(f"precision {result['prdc_precision']:.4f}, recall {result['prdc_recall']:.4f}, density "
                     f"{result['density']:.4f}, coverage {result['coverage']:.4f}  (Naeem et al., k={result['prdc_k']}, "
                     f"{result['prdc_n_fake']} samples against {result['prdc_n_real']} reference images)")
    if "cmmd" in result:
        lines.append(f"CMMD {result['cmmd']:.6g}  ({result['cmmd_convention']}; n_a={result['cmmd_n_a']}, "
                     f"n_b={result['cmmd_n_b']})")
    if "vendi" in result:
        lines.append(f"Vendi {result['vendi']:.6g}  ({result['vendi_convention']}, n={result['vendi_n']})")
    return "\n".join(lines)


def _headline(fd_name: str) -> str:
    """``fid`` -> ``FID``, ``fd_dinov2`` -> ``FD_DINOv2`` (EDM2's spelling)."""
    return {"fid": "FID", "fd_dinov2": "FD_DINOv2", "fd_clip": "FD_CLIP"}.get(fd_name, fd_name.upper())


def _extractor(args: argparse.Namespace):
    """The extractor the options name (``--channels-last`` applied), after the checks of the
    options that need no pass over the images (``--device``, ``--cache-dir``)."""
    from genbench.runner import check_device
    from genbench.store import check_output_path

    if args.device is not None:
        check_device(args.device, "the command line")
    if hasattr(args, "cache_dir") and not args.no_cache:  # fid and stats write their statistics there
        flag = "--cache-dir" if args.cache_dir else "the statistics cache (--cache-dir, or --no-cache)"
        check_output_path(Path(args.cache_dir) if args.cache_dir else default_cache_dir(), flag, directory=True)
    ex = resolve_extractor(args.extractor, args.mode, args.device, args.trust_unknown)
    if args.channels_last:
        ex_set = getattr(ex, "set_channels_last", None)
        if ex_set is None:
            raise UserError(f"--channels-last: extractor {args.extractor!r} has no channels_last option")
        ex_set()
    return ex


def cmd_fid(args: argparse.Namespace) -> int:
    result = compute_fid(args.path_a, args.path_b, _extractor(args), args.mode, batch_size=args.batch_size,
                         device=args.device, grey=args.grey, alpha=args.alpha, cache_dir=args.cache_dir,
                         use_cache=not args.no_cache, trust_unknown=args.trust_unknown, sqrtm=args.sqrtm,
                         npz_prefer=args.npz_prefer, metrics=parse_metrics(args.metrics), bootstrap=args.bootstrap,
                         center_crop=args.center_crop, prdc_k=args.prdc_k, feature_cap=args.feature_cap,
                         workers=args.workers)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(result_to_text(result))
    for w in result["warnings"]:
        print(f"genbench: warning: {w}", file=sys.stderr)
    return 0


def cmd_is(args: argparse.Namespace) -> int:
    check_splits(args.splits)  # before the extractor is loaded
    result = compute_inception_score(args.path, _extractor(args), args.mode, batch_size=args.batch_size,
                                     device=args.device, grey=args.grey, alpha=args.alpha,
                                     trust_unknown=args.trust_unknown, splits=args.splits, rule=args.rule,
                                     order=args.order, center_crop=args.center_crop, workers=args.workers)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"IS {result['is']:.6g} +- {result['is_std']:.3g}  ({result['extractor']} "
              f"{(result['weights_sha256'] or '')[:12]} mode={result['mode']}, {result['is_splits']} parts, "
              f"n={result['n']}; {result['is_convention']})")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from genbench.store import check_output_path

    check_output_path(Path(args.out))  # before the pass over the images, not after
    ex = _extractor(args)
    stats = path_to_statistics(args.path, ex, batch_size=args.batch_size, grey=args.grey, alpha=args.alpha,
                               cache_dir=args.cache_dir, use_cache=not args.no_cache, npz_prefer=args.npz_prefer,
                               center_crop=args.center_crop, workers=args.workers)
    identity = extractor_identity(ex)
    if stats.identity is None:
        raise UserError(f"{args.path}: a statistics file from another tool records no extractor; genbench stats "
                        f"will not relabel it as {identity.get('extractor')}'s")
    out = write_statistics_npz(args.out, stats.mu, stats.sigma, n=stats.n, identity=identity,
                               mu_s=stats.mu_s, sigma_s=stats.sigma_s,
                               extra={"genbench_source": stats.source,
                                      "genbench_data_hash": stats.data_hash or "",
                                      "genbench_preprocessing": stats.preprocessing})
    spatial = f", spatial {stats.mu_s.shape[0]}-d" if stats.has_spatial else ""
    print(f"statistics: {out} (n={stats.n}, dim={stats.dim}{spatial}, {identity.get('extractor')} "
          f"mode={identity.get('resize')})")
    return 0


def add_commands(subparsers) -> None:
    """Add ``fid``, ``is`` and ``stats`` to the ``genbench`` CLI's subparsers."""
    fid = subparsers.add_parser("fid", help="FID / FD_DINOv2 (sFID, IS, KID, precision/recall, density/coverage, "
                                "CMMD, Vendi) of samples against a reference")
    fid.add_argument("path_a", metavar="PATH_A", help="the samples: folder, npz, data set or hf:PATH[:SPLIT]")
    fid.add_argument("path_b", metavar="PATH_B", help="the reference: folder, npz (statistics, ADM reference "
                     "batch), data set or hf:PATH[:SPLIT]")
    _add_common(fid)
    _add_cache(fid)
    fid.add_argument("--metrics", default="fid", help=f"comma-separated, from {','.join(METRICS)} (default fid; "
                     f"sFID is reported whenever both sides allow it)")
    fid.add_argument("--prdc-k", type=int, default=None, metavar="K",
                     help="k of precision/recall/density/coverage (--metrics prdc; default 5, Naeem et al.)")
    fid.add_argument("--feature-cap", type=int, default=None, metavar="N",
                     help="kNN and kernel metrics use a seeded uniform sample of at most N images per side "
                          "(dgm-eval: 10000); FD always uses every image (default: all)")
    fid.add_argument("--bootstrap", type=int, default=0, metavar="N",
                     help="N bootstrap replicates of the samples for a 95%% interval of the FID (default off)")
    fid.add_argument("--sqrtm", default=None, help="matrix square root method of statistics_to_fid (default its own)")
    fid.add_argument("--json", action="store_true", help="print one JSON object: the numbers and their convention")
    fid.set_defaults(func=cmd_fid)

    is_ = subparsers.add_parser("is", help="Inception Score of one image source (ADM's convention)")
    is_.add_argument("path", metavar="PATH")
    _add_common(is_)
    is_.add_argument("--rule", default="adm", choices=["adm", "torch-fidelity"],
                     help="adm (default): parts of 5,000 rows, no shuffle; torch-fidelity: --splits equal parts "
                          "after a shuffle with seed 2020")
    is_.add_argument("--splits", type=int, default=10, help="parts of the torch-fidelity rule (default 10)")
    is_.add_argument("--order", default="content", choices=["content", "given"],
                     help="content (default): rows first in an order fixed by their values, so the score does "
                          "not depend on the order the images were drawn in; given: as they come (ADM's code)")
    is_.add_argument("--json", action="store_true")
    is_.set_defaults(func=cmd_is)

    stats = subparsers.add_parser("stats", help="write a source's feature statistics to an npz (mu, sigma + identity)")
    stats.add_argument("path", metavar="PATH")
    _add_common(stats)
    _add_cache(stats)
    stats.add_argument("--out", required=True, help="the .npz to write")
    stats.set_defaults(func=cmd_stats)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m genbench.features.commands fid A B``) until the CLI wires add_commands."""
    parser = argparse.ArgumentParser(prog="genbench")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    from genbench.registry import UnknownNameError

    try:
        return args.func(args)
    except (UserError, UnknownNameError) as e:
        print(f"genbench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["add_commands", "main", "result_to_text", "cmd_fid", "cmd_is", "cmd_stats"]
