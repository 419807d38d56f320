"""Extractor names (``inception``, ``torchscript:FILE``, ``clip:ARCH:FILE``) -> extractors, and
the identity (what decides the features) that statistics files and cache keys carry."""
from __future__ import annotations

import inspect
from typing import Any

from genbench.errors import UserError
from genbench.interfaces import FeatureExtractor
from genbench.registry import EXTRACTORS


def build_extractor(name: str, **options: Any) -> FeatureExtractor:
    """``NAME``, ``NAME:PATH`` (``torchscript:FILE``, ``inception:FILE``) -> an extractor.

    Options (``mode``, ``device``, ``trust_unknown``...) go to the factory; ``None`` values are
    dropped so that an extractor that takes no such option is not handed one.
    """
    if not isinstance(name, str) or not name:
        raise UserError("extractor name is empty; use e.g. inception or torchscript:FILE")
    base, sep, path = name.partition(":")
    options = {k: v for k, v in options.items() if v is not None}
    factory = EXTRACTORS.get(base)
    if sep:
        return _call_factory(factory, base, path=path, **options)
    return _call_factory(factory, base, **options)


def _call_factory(factory, base: str, **options):
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return factory(**options)
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            raise UserError(f"extractor {base!r} takes no option {', '.join(repr(u) for u in unknown)}; "
                            f"it takes {', '.join(k for k in params if k != 'self') or 'none'}")
    return factory(**options)


#: describe() keys that only label or explain, and do not change the features (``layout``:
#: channels_last changes them by float32 rounding only, as the resize on the device does)
_LABEL_KEYS = ("weights", "weights_path", "input", "layout")


def extractor_identity(extractor: FeatureExtractor) -> dict[str, Any]:
    """What decides the features, from ``describe()``: the extractor kind (``torchscript``,
    not the file's name), weights sha256, resize mode, dimension, layer and input scaling.
    Statistics files and cache keys carry it; two extractors with equal identities give
    the same features."""
    d = dict(extractor.describe())
    if isinstance(d.get("extractor"), str):
        d["extractor"] = d["extractor"].partition(":")[0]
    return {k: d[k] for k in sorted(d) if k not in _LABEL_KEYS}


__all__ = ["build_extractor", "extractor_identity"]
