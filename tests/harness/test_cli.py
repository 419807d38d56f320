"""The CLI: user mistakes exit 2 with one line naming the fix, and write nothing."""
import json
import subprocess
import sys


from genbench.cli import main


def _err_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_mistyped_suite_and_adapter(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--suite", "likelyhood", "--adapter", "fake-ar", "--out", str(out)]) == 2
    assert "Did you mean 'likelihood'" in _err_line(capsys)
    assert main(["run", "--suite", "toy", "--adapter", "fake-arr", "--out", str(out)]) == 2
    assert "fake-ar" in _err_line(capsys)
    assert not out.exists()


def test_run_file_with_unknown_key(tmp_path, capsys):
    f = tmp_path / "bad.toml"
    f.write_text('suites = ["toy"]\nadapters = ["fake-ar"]\nsuits = ["x"]\n')
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out)]) == 2
    line = _err_line(capsys)
    assert "bad.toml" in line and "'suits'" in line and "valid keys" in line
    assert not out.exists()


def test_out_dir_with_a_different_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--suite", "toy", "--adapter", "fake-ar", "--out", str(out)]) == 0
    records = (out / "records.jsonl").read_text()
    capsys.readouterr()
    assert main(["run", "--suite", "toy", "--adapter", "fake-masked", "--out", str(out)]) == 2
    assert "different run" in _err_line(capsys)
    assert (out / "records.jsonl").read_text() == records


def test_run_then_report(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--suite", "toy", "--adapter", "fake-ar", "--adapter", "fake-masked",
                 "--seed", "0", "--seed", "1", "--set", "toy.n_samples=4", "--out", str(out)]) == 0
    lines = [json.loads(l) for l in (out / "records.jsonl").read_text().splitlines()]
    assert {l["n"] for l in lines} == {4}
    assert main(["report", str(out), "--out", str(tmp_path / "r.md")]) == 0
    md = (tmp_path / "r.md").read_text()
    assert "## toy" in md and "fake-masked" in md and "≤ " in md  # the bound is marked
    assert "(exact)" in md and "(≤ bound)" in md  # exact and bound numbers in separate columns
    assert (tmp_path / "r.html").exists()  # the page beside the Markdown


def test_a_failed_cell_exits_1_but_keeps_records(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--suite", "toy", "--adapter", "fake-broken", "--adapter", "fake-ar", "--out", str(out)]) == 1
    recs = [json.loads(l) for l in (out / "records.jsonl").read_text().splitlines()]
    assert {r["status"] for r in recs} == {"ok", "failed"}


def test_list_from_the_console_script():
    r = subprocess.run([sys.executable, "-m", "genbench.cli", "list", "suites"], capture_output=True, text=True)
    assert r.returncode == 0 and "likelihood" in r.stdout.split()


def test_a_warning_is_one_genbench_line(tmp_path):
    """A suite's warning (FID from fewer samples than feature dimensions) reads `genbench: warning: ...`,
    without Python's file:line prefix and the source line that raised it."""
    r = subprocess.run([sys.executable, "-m", "genbench.cli", "run", "--suite", "image_quality", "--adapter",
                        "ar-digits", "--set", "image_quality.n_samples=20", "--set", "image_quality.fid_bootstrap=0",
                        "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stderr.splitlines() if "FID from 20 samples" in l]
    assert lines and all(l.startswith("genbench: warning: FID from 20 samples") for l in lines)
    assert "UserWarning" not in r.stderr and ".py:" not in r.stderr
    import warnings

    from genbench.cli import warning_line
    from genbench.suites import image_quality

    # another library's warning keeps its category and origin: not taken for genbench's own
    assert warning_line("x", UserWarning, image_quality.__file__, 3) == "genbench: warning: x\n"
    assert warning_line("y", FutureWarning, "/lib/site-packages/torch/nn/init.py", 7) == \
        "genbench: warning from init.py:7 (FutureWarning): y\n"
    before = warnings.formatwarning
    assert main(["list", "suites"]) == 0 and warnings.formatwarning is before  # in-process callers keep theirs
