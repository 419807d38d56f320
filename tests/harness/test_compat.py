"""The torchvision shim: importing genbench makes torchvision and its dependants importable."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from genbench import _compat


def _run(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (the shim acts once per process)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_import_torchvision_and_dependants_after_genbench():
    proc = _run(
        """
        import json, sys
        import genbench
        from genbench import _compat
        _compat.make_torchvision_importable()  # a second call must not install a second hook
        hooks = sum(type(f).__name__ == "_TorchvisionImportHook" for f in sys.meta_path)
        torch_after_genbench = "torch" in sys.modules

        import torchvision
        import cleanfid.fid
        import open_clip
        import torchmetrics.image
        import torch

        out = {"hooks": hooks, "torch_after_genbench": torch_after_genbench,
               "applied": _compat.applied, "reason": _compat.reason,
               "hooks_after": sum(type(f).__name__ == "_TorchvisionImportHook"
                                  for f in sys.meta_path)}
        # Idempotence: calling again changes nothing and defines nothing twice.
        _compat.make_torchvision_importable()
        out["shim_applied"] = _compat.shim_applied()
        out["redefined"] = _compat._define_ops(torch, "x") if _compat.applied else []

        boxes, scores = torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([1.0])
        for name, call in [("ops", lambda: torchvision.ops.nms(boxes, scores, 0.5)),
                           ("raw", lambda: torch.ops.torchvision.nms(boxes, scores, 0.5))]:
            try:
                out[name] = ["ok", str(call().tolist())]
            except Exception as e:
                out[name] = [type(e).__name__, str(e)]
        print(json.dumps(out))
        """
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["hooks"] == 1
    assert out["torch_after_genbench"] is False, "import genbench must not import torch"
    assert out["hooks_after"] == 0, "the import hook removes itself once it fired"
    assert out["applied"] in (True, False)
    assert out["shim_applied"] == out["applied"]
    assert out["redefined"] == []
    if out["applied"]:
        assert "C++ extension does not load" in out["reason"]
        # torchvision's own check fires first, with its own clear message...
        assert out["ops"][0] == "RuntimeError" and "C++ ops" in out["ops"][1]
        # ...and a direct call reaches our kernel, which names what is missing.
        assert out["raw"][0] == "TorchvisionExtensionMissing"
        assert "torchvision::nms" in out["raw"][1]
        assert "needs torchvision's C++ extension" in out["raw"][1]
    else:  # a matching build: the real op runs
        assert out["ops"] == ["ok", "[0]"]


def test_torchvision_fails_without_genbench_here():
    proc = _run("import torchvision")
    if proc.returncode == 0:
        pytest.skip("torchvision matches torch in this environment; the shim is not needed")
    assert "torchvision::nms does not exist" in proc.stderr


@pytest.fixture
def fresh_decision(monkeypatch):
    """Let a test re-run the decision without losing this process's real one.

    The real decision is taken first (applying the shim if this environment needs it, so
    later imports of torchvision in the test session still work); monkeypatch restores it.
    """
    _compat.shim_applied()
    monkeypatch.setattr(_compat, "applied", None)
    monkeypatch.setattr(_compat, "reason", "not checked yet")
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    return monkeypatch


def test_shim_does_nothing_when_extension_loads(fresh_decision):
    """With a loadable extension (here torch's own, already loaded, libc10) no op gets defined."""
    from pathlib import Path

    import torch

    libs = sorted((Path(torch.__file__).parent / "lib").glob("libc10.*"))
    if not libs:
        pytest.skip("no libc10 to stand in for a loadable extension")
    lib = str(libs[0])
    fresh_decision.setattr(_compat, "_torchvision_dir", lambda: "/nonexistent/torchvision")
    fresh_decision.setattr(_compat, "_extension_path", lambda package_dir: lib)
    defined = []
    fresh_decision.setattr(_compat, "_define_ops", lambda torch, message: defined.append(1) or [])
    assert _compat.shim_applied() is False
    assert _compat.reason == "torchvision's C++ extension loads"
    assert defined == []


def test_shim_does_nothing_without_torchvision(fresh_decision):
    fresh_decision.setattr(_compat, "_torchvision_dir", lambda: None)
    assert _compat.shim_applied() is False
    assert _compat.reason == "torchvision is not installed"


def test_schemas_cover_every_op_torchvision_registers_at_import():
    """Every op torchvision's Python files name as ``torchvision::X`` or
    ``torch.ops.torchvision.X`` has a schema in the shim (apart from ``_cuda_version``,
    which takes no tensors and is only called when the extension loaded)."""
    import re
    from pathlib import Path

    package_dir = _compat._torchvision_dir()
    if package_dir is None:
        pytest.skip("torchvision not installed")
    names = set()
    for path in Path(package_dir).rglob("*.py"):
        text = path.read_text(encoding="utf-8", errors="replace")
        names |= set(re.findall(r"torchvision::(\w+)", text))
        names |= set(re.findall(r"torch\.ops\.torchvision\.(\w+)", text))
        names |= set(re.findall(r"register_meta\(\"(\w+)\"", text))
    names.discard("_cuda_version")
    missing = names - set(_compat.TORCHVISION_OP_SCHEMAS)
    assert not missing, f"ops torchvision uses but the shim does not define: {sorted(missing)}"
    for name, schema in _compat.TORCHVISION_OP_SCHEMAS.items():
        assert schema.startswith(f"{name}(")
