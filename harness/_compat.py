"""Make ``import torchvision`` work when its C++ extension does not match the installed torch.

A torchvision wheel built for another torch (here: a CUDA build of torchvision next to a CPU
build of torch) ships a ``_C`` extension that fails to load. torchvision tolerates that for
most ops, but at import time ``torchvision/_meta_registrations.py`` calls
``torch.library.register_fake("torchvision::nms")`` (and ``qnms``) unconditionally, which
raises ``operator torchvision::nms does not exist``. Everything that imports torchvision
(clean-fid, open-clip, torch-fidelity, lpips, ``torchmetrics.image``) goes down with it, even
though none of them needs the detection ops.

The shim defines the schemas of the ops that ``_C`` would have registered (read off
torchvision's C++ sources: ``csrc/ops/*.cpp``), each with a kernel that raises a clear error,
so the import goes through and a call to one of those ops says what is missing. It acts only
when torchvision is installed, not yet imported, and its ``_C`` extension cannot be loaded;
with a matching torchvision it does nothing.

``genbench`` calls :func:`make_torchvision_importable` when it is imported. To keep
``import genbench`` free of torch (listing names must stay fast), the check runs lazily:
a ``sys.meta_path`` hook fires on the first ``import torchvision`` and removes itself; when
torch is already imported the check runs at once. :func:`shim_applied` says what happened
(and settles it now if nothing has imported torchvision yet), for provenance.
"""
from __future__ import annotations

import importlib.machinery
import re
import sys
import threading
from importlib import metadata
from typing import Any

#: The ops torchvision's ``_C`` defines that take tensors, with their exact schemas.
TORCHVISION_OP_SCHEMAS: dict[str, str] = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "box_iou_rotated": "box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor",
    "roi_align": (
        "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor"
    ),
    "_roi_align_backward": (
        "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, "
        "int sampling_ratio, bool aligned) -> Tensor"
    ),
    "qroi_align": (
        "qroi_align(Tensor input, Tensor rois, float input_scale, int input_zero_point, "
        "float rois_scale, int rois_zero_point, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor"
    ),
    "ps_roi_align": (
        "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width, int sampling_ratio) -> (Tensor, Tensor)"
    ),
    "_ps_roi_align_backward": (
        "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, "
        "float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, "
        "SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor"
    ),
    "roi_pool": (
        "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width) -> (Tensor, Tensor)"
    ),
    "_roi_pool_backward": (
        "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, "
        "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
        "SymInt height, SymInt width) -> Tensor"
    ),
    "ps_roi_pool": (
        "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width) -> (Tensor, Tensor)"
    ),
    "_ps_roi_pool_backward": (
        "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, "
        "float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, "
        "SymInt channels, SymInt height, SymInt width) -> Tensor"
    ),
    "deform_conv2d": (
        "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
        "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, "
        "SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor"
    ),
    "_deform_conv2d_backward": (
        "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, "
        "Tensor mask, Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, "
        "SymInt dilation_h, SymInt dilation_w, SymInt groups, SymInt offset_groups, "
        "bool use_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor)"
    ),
}

#: True once the shim defined the ops, False once it decided they are not needed (or could not
#: act), None while undecided (torchvision not imported yet).
applied: bool | None = None
#: Why the shim acted or not, in words (for provenance and error messages).
reason: str = "not checked yet"

_lock = threading.RLock()
_library: Any = None  # the torch.library.Library holding our definitions; must stay alive
_hook: "_TorchvisionImportHook | None" = None


class TorchvisionExtensionMissing(RuntimeError):
    """A torchvision C++ op was called but torchvision's ``_C`` extension is not loaded."""


def _torchvision_dir() -> str | None:
    """torchvision's package folder, found without importing it (or None if not installed)."""
    # PathFinder looks at sys.path only: it neither imports torchvision nor goes through the
    # meta-path hook below.
    spec = importlib.machinery.PathFinder.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _extension_path(package_dir: str) -> str | None:
    """Where torchvision's ``_C`` extension lives, located the way torchvision does."""
    loader = (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES)
    spec = importlib.machinery.FileFinder(package_dir, loader).find_spec("_C")
    return None if spec is None else spec.origin


def _torchvision_version(package_dir: str) -> str:
    """torchvision's full version (with its build tag, e.g. ``+cu130``), without importing it."""
    try:
        with open(f"{package_dir}/version.py", encoding="utf-8") as f:
            found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", f.read(), re.M)
        if found:
            return found.group(1)
    except OSError:
        pass
    try:
        return metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        return "unknown"


def _op_exists(torch: Any, name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
        return True
    except RuntimeError:
        return False


def _raising_kernel(name: str, message: str):
    def kernel(*args: Any, **kwargs: Any):
        raise TorchvisionExtensionMissing(f"torchvision::{name}: {message}")

    kernel.__name__ = f"torchvision_{name}_unavailable"
    return kernel


def _define_ops(torch: Any, message: str) -> list[str]:
    """Define every missing op schema in the ``torchvision`` namespace; return their names."""
    global _library
    if _library is None:
        _library = torch.library.Library("torchvision", "DEF")
    defined = []
    for name, schema in TORCHVISION_OP_SCHEMAS.items():
        if _op_exists(torch, name):
            continue
        _library.define(schema)
        # CompositeExplicitAutograd covers every backend (CPU, CUDA, ...) but leaves the Meta
        # key free, so torchvision's own register_fake calls still succeed.
        _library.impl(name, _raising_kernel(name, message), "CompositeExplicitAutograd")
        defined.append(name)
    return defined


def _resolve() -> bool:
    """Decide whether the shim is needed and apply it; idempotent. Returns ``applied``."""
    global applied, reason
    with _lock:
        if applied is not None:
            return applied
        if "torchvision" in sys.modules:
            applied, reason = False, "torchvision was already imported before genbench"
            return applied
        package_dir = _torchvision_dir()
        if package_dir is None:
            applied, reason = False, "torchvision is not installed"
            return applied
        try:
            import torch
        except ImportError as e:
            applied, reason = False, f"torch cannot be imported ({e})"
            return applied
        ext = _extension_path(package_dir)
        if ext is None:
            error = f"no _C extension in {package_dir}"
        else:
            try:
                torch.ops.load_library(ext)  # what torchvision.extension does on import
                applied, reason = False, "torchvision's C++ extension loads"
                return applied
            except (OSError, ImportError, RuntimeError) as e:
                error = f"{type(e).__name__}: {e}"
        tv_version = _torchvision_version(package_dir)
        message = (
            f"this op needs torchvision's C++ extension, which does not load with this torch "
            f"(torch {torch.__version__}, torchvision {tv_version}; {error}). genbench defined "
            f"the op's schema only so that `import torchvision` works; install a torchvision "
            f"build that matches torch to use torchvision.ops."
        )
        defined = _define_ops(torch, message)
        applied = True
        reason = (
            f"torchvision's C++ extension does not load ({error}); defined "
            f"{len(defined)} torchvision op schemas that raise when called"
        )
        return applied


class _TorchvisionImportHook:
    """A meta-path finder that applies the shim just before torchvision is first imported."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname == "torchvision":
            _remove_hook()
            try:
                _resolve()
            except Exception as e:  # never break an import that might have worked anyway
                import warnings

                warnings.warn(f"genbench's torchvision shim failed: {type(e).__name__}: {e}")
        return None  # let the normal finders import torchvision


def _remove_hook() -> None:
    global _hook
    with _lock:
        if _hook is not None:
            try:
                sys.meta_path.remove(_hook)
            except ValueError:
                pass
            _hook = None


def make_torchvision_importable() -> None:
    """Arrange for ``import torchvision`` to succeed even when its C++ extension cannot load.

    Idempotent. Imports nothing heavy: when torch is not imported yet, the check is deferred
    to the first ``import torchvision``.
    """
    global _hook
    with _lock:
        if applied is not None:
            return
        if "torchvision" in sys.modules or "torch" in sys.modules:
            _resolve()
            return
        if _hook is None:
            _hook = _TorchvisionImportHook()
            sys.meta_path.insert(0, _hook)


def shim_applied() -> bool:
    """Whether genbench defined torchvision's op schemas (True) or did not need to (False).

    Settles the question now if torchvision has not been imported yet (this imports torch).
    """
    _remove_hook()
    return _resolve()


__all__ = [
    "make_torchvision_importable", "shim_applied", "applied", "reason",
    "TORCHVISION_OP_SCHEMAS", "TorchvisionExtensionMissing",
]
