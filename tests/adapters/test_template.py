"""The documented ways to add an adapter: the template installed through an entry point (a
dist-info on sys.path, as pip would write it), the decorator with ``--plugin``, the factory's
``path=None``, and a suite that does not apply saying why."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from genbench.cli import main
from genbench.registry import ADAPTERS, build_adapter


def test_template_is_short_and_complete():
    from genbench.adapters import template

    assert len(Path(template.__file__).read_text().splitlines()) < 80


def test_template_installs_through_an_entry_point(tmp_path, monkeypatch, capsys):
    dist = tmp_path / "my_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[genbench.adapters]\nuniform-noise = genbench.adapters.template:UniformNoise\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(ADAPTERS, "_entry_points_loaded", False)
    monkeypatch.setattr(ADAPTERS, "_entries", {k: v for k, v in ADAPTERS._entries.items() if k != "uniform-noise"})
    monkeypatch.delitem(sys.modules, "genbench.adapters.template", raising=False)
    assert main(["list", "adapters"]) == 0
    assert "uniform-noise" in capsys.readouterr().out.split()
    assert ADAPTERS._entries["uniform-noise"] == "genbench.adapters.template:UniformNoise"  # from the entry point
    out = tmp_path / "run"
    assert main(["run", "--suite", "likelihood", "--suite", "speed", "--suite", "text_quality",
                 "--adapter", "uniform-noise", "--out", str(out), "--set", "likelihood.max_examples=5",
                 "--set", "speed.repeats=1", "--set", "speed.flops=false"]) == 0
    log = capsys.readouterr().out
    assert "n/a   text_quality x uniform-noise: the suite does not apply to a UniformNoise (paradigm " \
           "autoregressive, modality image)" in log
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    bpd = next(r for r in records if r["metric"] == "bits_per_dim")
    assert bpd["value"] == pytest.approx(8.0) and bpd["convention"]["kind"] == "exact"
    # the factory gets path=None without :PATH, and the template's check names the adapter
    assert build_adapter("uniform-noise").size == 8
    assert main(["run", "--suite", "speed", "--adapter", "uniform-noise:/x", "--out", str(tmp_path / "e")]) == 2
    assert "uniform-noise takes no checkpoint path" in capsys.readouterr().err


def test_plugin_flag_imports_a_decorated_module(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_adapters.py").write_text(
        "import genbench\nfrom genbench.adapters.template import UniformNoise\n\n"
        "@genbench.registry.ADAPTERS.register('noise-16')\nclass Noise16(UniformNoise):\n"
        "    name = 'noise-16'\n\n    def __init__(self, path=None, **kw):\n"
        "        super().__init__(path, **{'size': 16, **kw})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(ADAPTERS, "_entries", dict(ADAPTERS._entries))
    monkeypatch.delitem(sys.modules, "my_adapters", raising=False)
    assert main(["list", "adapters", "--plugin", "my_adapters"]) == 0
    assert "noise-16" in capsys.readouterr().out.split()
    assert main(["run", "--suite", "speed", "--adapter", "noise-16", "--plugin", "my_adapters", "--out",
                 str(tmp_path / "r"), "--set", "speed.repeats=1", "--set", "speed.flops=false"]) == 0
    assert main(["list", "adapters", "--plugin", "no_such_module_here"]) == 2
    assert "--plugin no_such_module_here: cannot import it" in capsys.readouterr().err
