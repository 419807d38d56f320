"""Streamed feature statistics: float64 sufficient statistics for the Fréchet distance and a
capped sample of raw rows for the kNN and kernel metrics, so that 50,000 images never need all
their features in memory when only FD is asked.

``FeatureAccumulator.add`` takes (B, D) features batch by batch and keeps ``n``, the sum and the
sum of outer products of the rows about a shift ``c`` (the first batch's mean: subtracting it
keeps the float64 sums well-conditioned); ``statistics()`` gives ``mu = c + s / n`` and
``sigma = (S - s s^T / n) / (n - 1)``, ``np.cov(rowvar=False)`` of all rows to rounding.
``keep`` says which rows stay: 0 none, None all (in order), or a cap m: a uniform random
sample of m rows (reservoir sampling, seeded, so reruns keep the same rows). With every row
kept, the statistics are the two-pass ones of those rows instead.

``add`` also takes torch tensors (the pipeline's features on CUDA): then the three sums are
kept in torch float64 on the tensor's device (an accelerator's float64 matrix products are
fast, and nothing waits for them) and read back once, when ``statistics()`` is asked; kept rows
are copied to the host as they come. The same formulas: equal to the numpy path to rounding
(tested at 1e-12 relative on CPU tensors).
"""
from __future__ import annotations

import numpy as np

from genbench.errors import UserError

#: images per call to the extractor when streaming (bounds memory, keeps the resize pool busy)
STREAM_IMAGES = 2048


class FeatureAccumulator:
    """Running float64 (n, sum, sum of outer products) of (B, D) batches, and kept rows."""

    def __init__(self, keep: int | None = 0, seed: int = 0):
        if keep is not None and int(keep) < 0:
            raise UserError(f"feature cap {keep}: must be >= 0 (0 keeps no rows, None all)")
        self.keep = None if keep is None else int(keep)
        self.n = 0
        self._shift: np.ndarray | None = None
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None
        self._rows: list[np.ndarray] = []
        self._reservoir: np.ndarray | None = None
        self._rng = np.random.default_rng(seed)
        #: (shift, sum, sum of outer products) as torch float64 tensors on a device, until read back
        self._device_sums: tuple | None = None

    def _add_tensor(self, features) -> None:
        """``add`` for a torch tensor: the sums on its device, in torch float64, no synchronisation."""
        torch = _torch()
        with torch.inference_mode():
            if features.ndim != 2:
                raise UserError(f"features of shape {tuple(features.shape)}; expected (B, D)")
            if len(features) == 0:
                return
            f = features.detach().to(torch.float64)
            if self._device_sums is None:
                shift = f.mean(dim=0)
                d = f.shape[1]
                self._device_sums = (shift, f.new_zeros(d), f.new_zeros((d, d)))
            elif f.shape[1] != self._device_sums[0].shape[0]:
                raise UserError(f"features of dimension {f.shape[1]} after {self._device_sums[0].shape[0]}-d ones")
            shift, total, outer = self._device_sums
            if self.keep is not None:
                x = f - shift
                total += x.sum(dim=0)
                outer.addmm_(x.T, x)
            if self.keep != 0:
                self._keep_rows(f.to("cpu").numpy())
        self.n += len(f)

    def _read_back(self) -> None:
        """The device sums -> the host's (once; later batches of either kind go on the host)."""
        if self._device_sums is not None:
            torch = _torch()
            with torch.inference_mode():
                self._shift, self._sum, self._outer = (t.to("cpu").numpy() for t in self._device_sums)
            self._device_sums = None

    def add(self, features) -> None:
        """(B, D) features: a numpy array (sums on the host) or a torch tensor (sums on its device)."""
        if _is_tensor(features):
            if self._shift is None:
                self._add_tensor(features)
                return
            features = features.detach().to("cpu", dtype=_torch().float64).numpy()  # host sums began first
        elif self._device_sums is not None:
            on = self._device_sums[0].device
            self._add_tensor(_torch().from_numpy(np.asarray(features, dtype=np.float64)).to(on))
            return
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2:
            raise UserError(f"features of shape {f.shape}; expected (B, D)")
        if len(f) == 0:
            return
        if self._shift is None:
            self._shift = f.mean(axis=0)
            d = f.shape[1]
            self._sum, self._outer = np.zeros(d), np.zeros((d, d))
        elif f.shape[1] != self._shift.shape[0]:
            raise UserError(f"features of dimension {f.shape[1]} after {self._shift.shape[0]}-d ones")
        if self.keep is not None:  # with every row kept, statistics() takes two passes over the rows instead
            x = f - self._shift
            self._sum += x.sum(axis=0)
            self._outer += x.T @ x
        self._keep_rows(f)
        self.n += len(f)

    def _keep_rows(self, f: np.ndarray) -> None:
        if self.keep is None:
            self._rows.append(f)
            return
        if self.keep == 0:
            return
        if self._reservoir is None:
            self._reservoir = np.empty((0, f.shape[1]))
        room = self.keep - len(self._reservoir)
        if room > 0:  # the first `keep` rows fill the reservoir
            self._reservoir = np.concatenate([self._reservoir, f[:room]])
            f, start = f[room:], self.n + room
        else:
            start = self.n
        if len(f) == 0:
            return
        # Algorithm R: row number t (0-based) replaces slot j ~ U{0..t} when j < keep, in order
        slots = self._rng.integers(0, np.arange(start, start + len(f)) + 1)
        for i in np.flatnonzero(slots < self.keep):
            self._reservoir[slots[i]] = f[i]

    def statistics(self, what: str = "features") -> tuple[np.ndarray, np.ndarray]:
        """``mu`` (D,) and ``sigma`` (D, D), float64, normalised by n - 1. When every row was
        kept, exactly ``features_to_statistics`` of them (two passes; bit-identical to FID
        computed from the features), else from the streamed sums."""
        self._read_back()
        if self.n < 2:
            raise UserError(f"{what}: {self.n} image(s) are not enough for a covariance; the Fréchet distance "
                            f"needs at least 2 (50,000 by convention)")
        if self.keep is None:
            from genbench.metrics.image import features_to_statistics

            return features_to_statistics(self.rows())
        mean_shifted = self._sum / self.n
        sigma = (self._outer - np.outer(self._sum, mean_shifted)) / (self.n - 1)
        return self._shift + mean_shifted, (sigma + sigma.T) / 2

    def rows(self) -> np.ndarray | None:
        """The kept rows, float64 (m, D): all of them in order (keep=None), a uniform sample of
        ``keep`` (in reservoir order), or None when none are kept."""
        if self.keep is None:
            return np.concatenate(self._rows) if self._rows else None
        return self._reservoir

    # --- parts of one pass, made apart (torchrun ranks) and merged: genbench.features.ranks -------
    def part(self) -> dict:
        """This accumulator's sufficient statistics, picklable: ``n``, ``shift`` (D,), ``sum`` (D,)
        and ``outer`` (D, D) about the shift (None before any row, or when every row is kept), and
        ``rows`` (every kept row, in order, when ``keep`` is None). Sums kept on a device are read
        back first."""
        self._read_back()
        return {"n": self.n, "keep": self.keep, "shift": self._shift, "sum": self._sum, "outer": self._outer,
                "rows": self.rows() if self.keep is None else None}

    @classmethod
    def merged(cls, parts: list[dict], keep: int | None = 0) -> "FeatureAccumulator":
        """One accumulator from the ``part()`` of accumulators that saw consecutive pieces of the
        rows, in that order: every row kept (``keep`` None) is the rows concatenated (so the
        statistics are the two-pass ones, as from one pass); else float64 sums, each part's
        re-centred on the first non-empty part's shift ``c`` and added in list order:
        ``s + n d`` and ``S + s d^T + d s^T + n d d^T`` with ``d = c_part - c``. A capped
        reservoir (keep > 0) cannot be merged into the one a single pass keeps."""
        if keep is not None and keep > 0:
            raise UserError(f"a reservoir of {keep} rows from parts is not the single pass's; merge keep=0 or None")
        out = cls(keep)
        for p in parts:
            if not p["n"]:
                continue
            if keep is None:
                out._rows.append(np.asarray(p["rows"], dtype=np.float64))
                out.n += p["n"]
                continue
            if out._shift is None:
                out._shift, out._sum, out._outer = p["shift"].copy(), p["sum"].copy(), p["outer"].copy()
            else:
                if p["shift"].shape != out._shift.shape:
                    raise UserError(f"features of dimension {p['shift'].shape[0]} after {out._shift.shape[0]}-d ones")
                d = p["shift"] - out._shift
                out._sum += p["sum"] + p["n"] * d
                out._outer += p["outer"] + np.outer(p["sum"], d) + np.outer(d, p["sum"]) + p["n"] * np.outer(d, d)
            out.n += p["n"]
        return out


def _is_tensor(x) -> bool:
    import sys

    torch = sys.modules.get("torch")  # never import torch for numpy input
    return torch is not None and isinstance(x, torch.Tensor)


def _torch():
    import torch

    return torch


__all__ = ["FeatureAccumulator", "STREAM_IMAGES"]
