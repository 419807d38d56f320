"""The common interface every generator, tokenizer and suite stands behind.

Shapes and units are part of the contract:

* images are ``uint8`` arrays of shape ``(N, H, W, C)``;
* text samples are token ids ``(N, T)`` (int64) plus their decoded strings;
* a log-likelihood is a *negative* log-likelihood in nats per example, with the number of
  units (tokens, bytes or dimensions) each example holds, so any per-unit rate is
  ``nll.sum() / units.sum()``.
"""
from __future__ import annotations

import abc
import enum
import inspect
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from genbench.errors import UserError

PARADIGMS = ("autoregressive", "masked", "diffusion")
MODALITIES = ("image", "text")
UNITS = ("token", "byte", "dimension")

Paradigm = Literal["autoregressive", "masked", "diffusion"]
Modality = Literal["image", "text"]


class LikelihoodKind(str, enum.Enum):
    """How a log-likelihood relates to the true one."""

    EXACT = "exact"
    UPPER_BOUND = "upper_bound"  # an NLL upper bound, i.e. an ELBO
    UNAVAILABLE = "unavailable"


@dataclass
class Samples:
    """What ``Generator.sample`` returns.

    images: uint8 (N, H, W, C) for image generators, else None.
    tokens: int64 (N, T) for text generators, else None.
    texts:  N decoded strings for text generators, else None.
    nfe:    network function evaluations used for the whole call (all N samples);
            a forward pass over a batch counts once per batch, so ``nfe_per_sample``
            is what compares paradigms.
    """

    images: np.ndarray | None = None
    tokens: np.ndarray | None = None
    texts: list[str] | None = None
    nfe: int = 0
    nfe_per_sample: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        if self.images is not None:
            return int(self.images.shape[0])
        if self.tokens is not None:
            return int(len(self.tokens))
        return len(self.texts or [])

    def validate(self, n: int, modality: str) -> "Samples":
        """Raise ``ContractError`` when the samples break the interface contract."""
        if modality == "image":
            if self.images is None:
                raise ContractError("image generator returned no images")
            a = self.images
            if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 4:
                raise ContractError(
                    f"images must be a uint8 array (N, H, W, C); got "
                    f"{type(a).__name__} {getattr(a, 'dtype', '')} {getattr(a, 'shape', '')}"
                )
        else:
            if self.texts is None:
                raise ContractError("text generator returned no decoded texts")
        if len(self) != n:
            raise ContractError(f"asked for {n} samples, got {len(self)}")
        if self.nfe < 0:
            raise ContractError("nfe must be >= 0")
        return self


@dataclass
class LogLikelihood:
    """Per-example negative log-likelihood.

    nll:    float64 (N,) nats per example (a sum over the example's units).
    units:  float64 (N,) how many units each example holds.
    unit:   "token" | "byte" | "dimension".
    kind:   exact, upper_bound (ELBO) or unavailable.
    stderr: float64 (N,) Monte Carlo standard error of each nll, None when exact.
    mc_samples: Monte Carlo samples (timesteps) drawn per example, None when exact.
    """

    nll: np.ndarray
    units: np.ndarray
    unit: str
    kind: LikelihoodKind
    stderr: np.ndarray | None = None
    mc_samples: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def unavailable(cls, n: int, unit: str) -> "LogLikelihood":
        nan = np.full(n, np.nan)
        return cls(nll=nan, units=np.zeros(n), unit=unit, kind=LikelihoodKind.UNAVAILABLE)

    def validate(self) -> "LogLikelihood":
        if self.unit not in UNITS:
            raise ContractError(f"unit must be one of {UNITS}, got {self.unit!r}")
        kind = LikelihoodKind(self.kind)
        self.kind = kind
        self.nll = np.asarray(self.nll, dtype=np.float64)
        self.units = np.asarray(self.units, dtype=np.float64)
        if self.nll.shape != self.units.shape or self.nll.ndim != 1:
            raise ContractError("nll and units must both have shape (N,)")
        if kind is LikelihoodKind.UNAVAILABLE:
            return self
        if not np.all(np.isfinite(self.nll)):
            raise ContractError("log-likelihood is not finite (NaN or inf in the model's output)")
        if kind is LikelihoodKind.UPPER_BOUND and self.mc_samples and self.stderr is None:
            raise ContractError("a Monte Carlo bound must report its standard error")
        if self.stderr is not None:
            self.stderr = np.asarray(self.stderr, dtype=np.float64)
        return self

    @classmethod
    def concat(cls, parts: list["LogLikelihood"]) -> "LogLikelihood":
        """One evaluation's result from its parts in example order (a suite's calls, torchrun
        ranks' shares): per-example arrays concatenated, ``info`` merged by ``merge_info``. The
        parts must agree on unit and kind."""
        first = parts[0]
        for p in parts[1:]:
            if p.unit != first.unit or LikelihoodKind(p.kind) != LikelihoodKind(first.kind):
                raise ContractError("a generator changed its likelihood unit or kind between calls")
        has_se = all(p.stderr is not None for p in parts)
        return cls(nll=np.concatenate([p.nll for p in parts]), units=np.concatenate([p.units for p in parts]),
                   unit=first.unit, kind=first.kind,
                   stderr=np.concatenate([p.stderr for p in parts]) if has_se else None,
                   mc_samples=first.mc_samples, info=cls.merge_info(parts))

    @staticmethod
    def merge_info(parts: list["LogLikelihood"]) -> dict[str, Any]:
        """The ``info`` of parts of one evaluation: a value every part gives stays; a count
        (``windows`` or ``n_*``, integers) is summed; a ``mean_*`` value (a number or a dict of numbers: means over the
        part's examples) is averaged, weighted by the parts' example counts; any other value that
        differs becomes the list of the parts' values, never one part's alone."""
        keys = list(dict.fromkeys(k for p in parts for k in p.info))
        sizes = np.array([len(p.nll) for p in parts], dtype=np.float64)
        out: dict[str, Any] = {}
        for k in keys:
            values = [p.info.get(k) for p in parts]
            if all(v == values[0] for v in values[1:]):
                out[k] = values[0]
            elif (k == "windows" or k.startswith("n_")) and all(isinstance(v, int) and not isinstance(v, bool)
                                                                 for v in values):
                out[k] = sum(values)
            elif k.startswith("mean_") and all(isinstance(v, (int, float)) for v in values):
                out[k] = float(np.average(values, weights=sizes))
            elif k.startswith("mean_") and all(isinstance(v, dict) for v in values) \
                    and all(v.keys() == values[0].keys() for v in values):
                out[k] = {j: float(np.average([v[j] for v in values], weights=sizes)) for j in values[0]}
            else:
                out[k] = values
        return out

    def per_unit(self) -> float:
        """Nats per unit over all examples (a ratio of sums, as the papers report)."""
        return float(self.nll.sum() / self.units.sum())

    def per_unit_stderr(self) -> float | None:
        """Standard error of ``per_unit`` from the examples' independent MC errors."""
        if self.stderr is None:
            return None
        return float(np.sqrt(np.sum(self.stderr**2)) / self.units.sum())


class ContractError(RuntimeError):
    """A generator broke the common interface (wrong shape, dtype, NaN...)."""


class Generator(abc.ABC):
    """A generative model behind the common interface.

    Subclasses set ``name``, ``paradigm`` and ``modality`` and implement ``sample``;
    ``log_likelihood`` defaults to unavailable.
    """

    name: str = "generator"
    paradigm: Paradigm
    modality: Modality
    #: the unit a likelihood from this model is counted in
    likelihood_unit: str = "dimension"
    #: options that change how the loaded model is used, not what is loaded (sampler steps,
    #: scheduler, guidance...): a sweep over them loads the weights once and takes each
    #: point from ``with_options`` (see ``genbench.runner``)
    runtime_options: frozenset[str] = frozenset()
    #: image models: how many values per pixel the likelihood is over (bits/dim are in these)
    pixel_levels: int = 256

    @abc.abstractmethod
    def sample(
        self,
        n: int,
        *,
        seed: int,
        batch_size: int = 64,
        condition: Any = None,
        steps: int | None = None,
        start: int = 0,
    ) -> Samples:
        """Draw ``n`` samples; the same seed gives the same samples whatever ``batch_size``
        allows the model to keep (each model documents whether batch size matters).

        condition: None, or int64 class labels (n,) for a class-conditional model: the labels of
                   this call's samples (a class-conditional model's default for None is the
                   schedule ``(start + i) mod num_classes``).
        steps:     the sampler's steps, overriding the model's option (None: the option's).
        start:     sample ``i`` of the call is sample ``start + i`` of the run and draws its
                   randomness from its own stream, ``sampling.example_generator(seed, start + i,
                   stream="sample")``; so ``sample(n, seed=s)[k:k+m]`` equals
                   ``sample(m, seed=s, start=k)``, and a suite that samples in chunks, or
                   ``genbench.distributed`` splitting a call across torchrun ranks, gets the
                   samples of one whole call.
        ``Samples.nfe_per_sample`` counts network evaluations per sample (a guided step counts
        its conditional and unconditional halves)."""

    def log_likelihood(self, batch: Any, *, seed: int = 0, start: int = 0) -> LogLikelihood:
        """NLL of each example in ``batch`` (images uint8 (N,H,W,C) or a list of texts).

        Example ``i`` of ``batch`` is example ``start + i`` of the evaluation: a Monte Carlo
        estimate draws its randomness from ``sampling.example_generator(seed, start + i, ...,
        stream="likelihood")``, so it does not depend on how the caller groups examples into
        calls, and two seeds give independent estimates."""
        return LogLikelihood.unavailable(len(batch), self.likelihood_unit)

    @property
    def likelihood_kind(self) -> LikelihoodKind:
        """What ``log_likelihood`` returns, known without running it; override it together
        with ``log_likelihood`` (the likelihood suite skips a generator that says unavailable)."""
        return LikelihoodKind.UNAVAILABLE

    @property
    def likelihood_unavailable_reason(self) -> str:
        """Why ``likelihood_kind`` is unavailable (recorded when the likelihood suite skips it)."""
        return "likelihood_kind is unavailable"

    @classmethod
    def check_options(cls, path: str | None, **options: Any) -> None:
        """Raise ``UserError`` for options or a path that cannot work, before a run writes
        anything (cheap checks only: files exist, option values; no weights loaded)."""

    def with_options(self, **options: Any) -> "Generator":
        """This model (sharing its weights) with some ``runtime_options`` changed."""
        unknown = set(options) - set(self.runtime_options)
        if unknown:
            raise ContractError(f"{self.name}: options {sorted(unknown)} need a reload; runtime options: "
                                f"{sorted(self.runtime_options) or 'none'}")
        if not options:
            return self
        raise NotImplementedError(f"{type(self).__name__} declares runtime_options but no with_options")

    def describe(self) -> dict[str, Any]:
        """Configuration that identifies this model in a record (hashed into config_hash)."""
        return {"name": self.name, "paradigm": self.paradigm, "modality": self.modality}

    # --- helpers for subclasses -------------------------------------------------
    @staticmethod
    def batches(n: int, batch_size: int) -> Iterable[tuple[int, int]]:
        """Yield (start, size) of consecutive batches covering n items."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        for start in range(0, n, batch_size):
            yield start, min(batch_size, n - start)


TOKENIZER_KINDS = ("discrete", "continuous")


class Tokenizer(abc.ABC):
    """An image tokenizer: uint8 images (N, H, W, C) <-> codes or latents.

    Two kinds (``kind``):

    * ``"discrete"``: ``encode`` returns int64 codes (N, h, w) in ``[0, codebook_size)``;
    * ``"continuous"``: ``encode`` returns float32 latents (N, c, h, w) (``latent_shape`` =
      (c, h, w) for the tokenizer's resolution), e.g. a KL-VAE's posterior mean or a sample.

    Images stay uint8 at the interface both ways; each adapter states how it scales pixels
    into the network (``pixel_scaling``, e.g. ``"x / 127.5 - 1 ([-1, 1])"``) and how the
    decoder's float output returns to uint8 (``output_quantisation``, e.g. clamp, then round).
    ``resolution`` is the (H, W) the tokenizer takes (None: any multiple of
    ``downsampling``), ``channels`` the C it takes (1 or 3).
    """

    name: str = "tokenizer"
    #: records group tokenizers apart from the three generator paradigms
    paradigm: str = "tokenizer"
    modality: str = "image"
    kind: str = "discrete"
    codebook_size: int | None = None
    channels: int = 3
    resolution: tuple[int, int] | None = None
    downsampling: int = 1
    pixel_scaling: str = ""
    output_quantisation: str = ""

    @abc.abstractmethod
    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) -> int64 codes (N, h, w), or float32 latents (N, c, h, w)."""

    @abc.abstractmethod
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """codes or latents as ``encode`` returns them -> uint8 images (N, H, W, C)."""

    def describe(self) -> dict[str, Any]:
        out = {"name": self.name, "kind": self.kind, "channels": self.channels,
               "resolution": list(self.resolution) if self.resolution else None,
               "downsampling": self.downsampling, "pixel_scaling": self.pixel_scaling,
               "output_quantisation": self.output_quantisation}
        if self.kind == "discrete":
            out["codebook_size"] = self.codebook_size
        return out

    def check_images(self, images: np.ndarray, where: str = "") -> None:
        """Raise ``UserError`` naming the tokenizer when images are not what it takes."""
        from genbench.errors import UserError

        who = f"{self.name}{': ' + where if where else ''}"
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            raise UserError(f"{who}: images must be a uint8 array (N, H, W, C); got {type(images).__name__} "
                            f"{getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}")
        _, h, w, c = images.shape
        if c != self.channels:
            raise UserError(f"{who}: images have {c} channel(s) but the tokenizer takes {self.channels}"
                            + ("; set grey = \"convert\" to replicate grey images to RGB" if c == 1 else ""))
        if self.resolution is not None and (h, w) != tuple(self.resolution):
            raise UserError(f"{who}: images are {h}x{w} but the tokenizer takes {self.resolution[0]}x"
                            f"{self.resolution[1]}; set the suite's resize = \"center_crop\" (ADM) to resize them, "
                            f"or the adapter's resolution")
        if h % self.downsampling or w % self.downsampling:
            raise UserError(f"{who}: images are {h}x{w}, not a multiple of the tokenizer's downsampling factor "
                            f"{self.downsampling}")


class FeatureExtractor(abc.ABC):
    """Images -> feature vectors, for FID-style metrics.

    ``features`` takes uint8 images (N, H, W, C) and returns float64 (N, D); ``describe``
    names the convention (extractor, weights sha256, input resize) every number must carry.
    """

    name: str = "extractor"
    dim: int

    @abc.abstractmethod
    def features(self, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """uint8 (N, H, W, C) -> float64 (N, D)."""

    def describe(self) -> dict[str, Any]:
        return {"extractor": self.name, "dim": self.dim}


def sample_start_kwargs(generator: Any, start: int) -> dict[str, int]:
    """The ``start`` keyword for ``generator.sample``: ``{"start": start}`` when its ``sample``
    takes it, ``{}`` for ``start == 0`` on an adapter written before ``start`` existed; a
    sample that would need it on such an adapter is a one-line ``UserError`` (without it the
    adapter would draw samples ``0..`` again instead of ``start..``)."""
    try:
        takes = "start" in inspect.signature(generator.sample).parameters
    except (TypeError, ValueError):
        takes = False
    if takes:
        return {"start": int(start)}
    if int(start) == 0:
        return {}
    name = getattr(generator, "name", type(generator).__name__)
    raise UserError(f"adapter {name!r}: its sample() takes no start= (the index of the call's first sample), "
                    "which sampling in chunks or across torchrun ranks needs; add start: int = 0 to its sample "
                    "(see genbench.interfaces.Generator.sample), or sample in one call (sample_chunk >= n_samples)")


def check_paradigm(paradigm: str, modality: str) -> None:
    if paradigm not in PARADIGMS:
        raise ContractError(f"paradigm must be one of {PARADIGMS}, got {paradigm!r}")
    if modality not in MODALITIES:
        raise ContractError(f"modality must be one of {MODALITIES}, got {modality!r}")


__all__ = [
    "PARADIGMS", "MODALITIES", "UNITS", "LikelihoodKind", "Samples", "LogLikelihood",
    "Generator", "Tokenizer", "TOKENIZER_KINDS", "FeatureExtractor", "ContractError", "check_paradigm",
    "sample_start_kwargs", "Sequence",
]
