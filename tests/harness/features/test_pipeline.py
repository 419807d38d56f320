"""The feature pipeline: worker processes give the very numbers of the in-process threads (folders,
npz batches, data sets, centre crops, mixed sizes, sFID); the accelerator's resize path, run on CPU
tensors, gives the host path's features to float32 rounding; errors still name the file; the
image-quality suite's records do not change with the pipeline."""
from __future__ import annotations

import glob
import hashlib
import json
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench.features import decode_arena, decode_workers, device_batches, pipeline
from genbench.features.build import build_extractor
from genbench.features.extractor_inception import InceptionExtractor
from genbench.features.statistics import path_to_statistics
from tests.harness.features.helpers import digit_images, write_pngs
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, data):
    """A folder of PNGs of three sizes (one larger than a worker's slot for uint8 images)."""
    root = tmp_path_factory.mktemp("mixed")
    folder = write_pngs(root / "imgs", digit_images(0, 5))
    write_pngs(folder, digit_images(5, 3, size=48), prefix="mid")
    big = np.kron(digit_images(9, 1, size=80)[0], np.ones((8, 8, 1), np.uint8))  # 640x640: > 597x597
    write_pngs(folder, big[None], prefix="zz_big")
    return folder


def test_workers_give_the_numbers_of_threads(data, mixed, standin, tmp_path):
    net = f"torchscript:{data['net']}"
    for mode in ("clean", "legacy_pytorch"):
        threads = path_to_statistics(mixed, net, mode, use_cache=False, keep_features=True, workers=0, batch_size=4)
        procs = path_to_statistics(mixed, net, mode, use_cache=False, keep_features=True, workers=2, batch_size=4)
        np.testing.assert_array_equal(procs.features, threads.features)
        np.testing.assert_array_equal(procs.sigma, threads.sigma)
    # sFID's spatial features and legacy_tensorflow's runs of one size (uint8 images, one too big for its slot)
    path, _ = standin
    for mode in ("clean", "legacy_tensorflow"):
        ex = InceptionExtractor(path=path, trust_unknown=True, mode=mode)
        a = path_to_statistics(mixed, ex, use_cache=False, workers=0, batch_size=3)
        b = path_to_statistics(mixed, ex, use_cache=False, workers=2, batch_size=3)
        assert a.has_spatial and b.has_spatial
        np.testing.assert_array_equal(b.mu, a.mu)
        np.testing.assert_array_equal(b.sigma_s, a.sigma_s)
    # an ADM-style npz batch (arrays in memory), a saved data set (encoded rows) and ADM's centre crop
    npz = tmp_path / "samples.npz"
    np.savez(npz, arr_0=digit_images(0, 7, size=40))
    from tests.harness.features.helpers import save_hf

    saved = save_hf(tmp_path / "saved", {"test": digit_images(20, 6)})
    for source, kw in ((npz, {}), (f"hf:{saved}", {}), (npz, {"center_crop": 24})):
        a = path_to_statistics(source, net, use_cache=False, workers=0, **kw)
        b = path_to_statistics(source, net, use_cache=False, workers=2, **kw)
        np.testing.assert_array_equal(b.mu, a.mu)
        np.testing.assert_array_equal(b.sigma, a.sigma)


def test_resize_on_the_device_path_matches_the_host_path(data, mixed, standin):
    """What runs on CUDA (uint8 to the device, the matrix resize there), here on CPU tensors."""
    for mode in ("clean", "legacy_pytorch"):
        ex = build_extractor(f"torchscript:{data['net']}", mode=mode)
        host = path_to_statistics(mixed, ex, use_cache=False, keep_features=True, batch_size=4, workers=0)
        ex.device_resize = True
        assert pipeline.resize_on_device(ex)
        for workers in (0, 2):
            dev = path_to_statistics(mixed, ex, use_cache=False, keep_features=True, batch_size=4, workers=workers)
            assert_matches_reference(dev.features, host.features, rtol=1e-5, atol=1e-6,
                                     what=f"features, {mode} resize on tensors vs on the host")
    path, _ = standin
    ex = InceptionExtractor(path=path, trust_unknown=True)
    host = ex.outputs(digit_images(0, 4), spatial=True)
    ex.device_resize = True
    dev = ex.outputs(digit_images(0, 4), spatial=True)
    assert_matches_reference(dev["spatial"], host["spatial"], rtol=1e-5, atol=1e-6, what="spatial features")


def test_the_accelerator_code_path_on_cpu(data, mixed, monkeypatch):
    """The CUDA path (pinned double-buffered staging, non-blocking copies, features kept on the
    device until the end, the resize there) run with CPU stand-ins for pinning and events."""
    class Event:
        def record(self):
            pass

        def synchronize(self):
            pass

    ex = build_extractor(f"torchscript:{data['net']}")
    host = path_to_statistics(mixed, ex, use_cache=False, keep_features=True, batch_size=3, workers=0)
    for module in (pipeline, device_batches):  # where each looks it up (statistics_on_device: device_batches)
        monkeypatch.setattr(module, "_is_cuda", lambda device: True)
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: self)
    ex.device_resize = True
    for workers in (0, 2):
        dev = path_to_statistics(mixed, ex, use_cache=False, keep_features=True, batch_size=3, workers=workers)
        assert_matches_reference(dev.features, host.features, rtol=1e-5, atol=1e-6, what="staged, resized on tensors")


def test_worker_errors_name_the_file_and_the_pool_goes_on(data, tmp_path):
    net = f"torchscript:{data['net']}"
    folder = write_pngs(tmp_path / "f", digit_images(0, 9))
    (folder / "img_004.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    with pytest.raises(UserError, match=r"img_004\.png.*corrupt"):
        path_to_statistics(folder, net, use_cache=False, workers=2, batch_size=2)
    (folder / "img_004.png").unlink()
    ex = build_extractor(net)
    calls = []

    def dies_on_the_second_batch(x):
        calls.append(len(x))
        if len(calls) == 2:
            raise RuntimeError("network died half way")
        return type(ex)._forward(ex, x)

    ex._forward = dies_on_the_second_batch
    with pytest.raises(RuntimeError, match="half way"):
        path_to_statistics(folder, ex, use_cache=False, workers=2, batch_size=2)
    # nothing left over from the failed jobs writes into the next one's buffers
    del ex._forward
    again = path_to_statistics(folder, ex, use_cache=False, workers=2, batch_size=2)
    np.testing.assert_array_equal(again.mu, path_to_statistics(folder, ex, use_cache=False, workers=0, batch_size=2).mu)
    assert again.n == 8
    with pytest.raises(UserError, match="uint8"):  # the check of each image runs in the workers too
        build_extractor(net).outputs_from_loaders([lambda: np.zeros((8, 8, 3), np.float32)] * 2, workers=0)


def test_workers_setting(monkeypatch):
    monkeypatch.setenv(decode_workers.WORKERS_ENV, "3")
    assert decode_workers.default_workers(10) == 3
    monkeypatch.setenv(decode_workers.WORKERS_ENV, "many")
    with pytest.raises(UserError, match="GENBENCH_DECODE_WORKERS"):
        decode_workers.default_workers(10)
    monkeypatch.delenv(decode_workers.WORKERS_ENV)
    assert decode_workers.default_workers(10) == 0  # a small job: threads
    assert decode_workers.default_workers(10**6) in (0, decode_workers.cpu_count())


def test_time_fid_reports_rates(data):
    r = pipeline.time_fid(data["a"], data["b"], f"torchscript:{data['net']}", device="cpu", repeats=1,
                          batch_size=8, workers=0)
    assert r["n_images"] == 48 and r["fid"] > 0 and r["resize_on"] == "host" and r["decode"] == "threads"
    for key in ("end_to_end", "network", "preprocess"):
        assert r[f"{key}_images_per_s"] > 0 and r[f"{key}_s"] > 0
    assert r["end_to_end_over_network"] == pytest.approx(r["network_s"] / r["end_to_end_s"])


def test_image_quality_records_do_not_depend_on_the_pipeline(data, tmp_path, monkeypatch):
    """The suite's records are the same whether decoding runs on threads (the earlier pipeline)
    or in worker processes."""
    from genbench.store import deterministic_fields
    from genbench.suite import SuiteContext
    from genbench.suites.image_quality import ImageQuality
    from tests.suites.test_image_quality import CHUNK, CLASSES, PER_CLASS, ClassConditionalFake

    files = {"reference": data["b"], "net": data["net"]}
    options = {**ImageQuality.options, "reference": str(files["reference"]), "extractor": f"torchscript:{files['net']}",
               "extractor_mode": "clean", "num_classes": CLASSES, "samples_per_class": PER_CLASS,
               "n_samples": CLASSES * PER_CLASS, "sample_chunk": CHUNK, "save_png": False, "quantisation": "round",
               "batch_size": 8, "kid_subset_size": 1000}
    records = {}
    for workers in ("0", "2"):
        monkeypatch.setenv(pipeline.WORKERS_ENV, workers)
        ctx = SuiteContext(seed=0, options=options, artifacts=tmp_path / f"cell{workers}")
        records[workers] = [(m.metric, m.value, m.stderr, m.n,  # timings (``*_seconds``) aside
                             deterministic_fields({"convention": m.convention})["convention"])
                            for m in ImageQuality().run(ClassConditionalFake(), ctx)]
    assert records["0"] == records["2"] and {"fid", "kid", "precision", "recall"} <= {r[0] for r in records["0"]}


def test_channels_last_is_opt_in_and_recorded_as_layout(data, standin, tmp_path, capsys):
    """``--channels-last`` / ``set_channels_last``: NHWC inputs and weights, features equal to
    float32 rounding, ``layout`` in describe() and in compute_fid's result but not in the
    identity (caches and statistics files stay valid); extractors without it refuse it."""
    import json

    from genbench.features.build import extractor_identity
    from genbench.features.fid import compute_fid
    from tests.harness.features.helpers import cli_main

    path, _ = standin
    for ex in (build_extractor(f"torchscript:{data['net']}"), InceptionExtractor(path=path, trust_unknown=True)):
        before, identity = ex.outputs(digit_images(0, 3), spatial=ex.spatial_status() is None), extractor_identity(ex)
        assert "layout" not in ex.describe() and "layout" not in compute_fid(data["a"], data["b"], ex,
                                                                             use_cache=False)
        seen = []
        outputs = ex._tensor_outputs
        ex._tensor_outputs = lambda x, spatial: seen.append(x.is_contiguous(memory_format=torch.channels_last)) \
            or outputs(x, spatial)
        ex.set_channels_last()
        after = ex.outputs(digit_images(0, 3), spatial=ex.spatial_status() is None)
        assert seen and all(seen)
        for key in before:
            assert_matches_reference(after[key], before[key], rtol=1e-5, atol=1e-6, what=f"channels_last {key}")
        assert extractor_identity(ex) == identity and ex.describe()["layout"].startswith("channels_last")
        assert compute_fid(data["a"], data["b"], ex, use_cache=False)["layout"] == ex.describe()["layout"]
    assert cli_main(["fid", str(data["a"]), str(data["b"]), "--extractor", f"torchscript:{data['net']}",
                     "--channels-last", "--no-cache", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["layout"].startswith("channels_last")
    from tests.harness.features.helpers import tiny_dinov2

    dino = build_extractor(f"dinov2:{tiny_dinov2(tmp_path / 'dino')}", trust_unknown=True)
    with pytest.raises(UserError, match="no channels_last option"):
        dino.set_channels_last()


# --- the decode arena: shared memory that no process leaves behind --------------------------------
_IN_A_SESSION = """
import hashlib, json, os, sys, time
from genbench.features import decode_workers
from genbench.features.loaders import FileImage
loaders = [FileImage(os.path.join(sys.argv[1], f)) for f in sorted(os.listdir(sys.argv[1]))]
pool = decode_workers.decode_pool(2)
with pool.session(len(loaders), None, 32) as session:
    batch = session.collect(session.submit(loaders, 0))
    print(json.dumps({"arena": session.arena.path, "workers": sorted(pool.executor._processes),
                      "images": [hashlib.sha1(img.tobytes()).hexdigest() for img in batch.images]}), flush=True)
    time.sleep(60)  # SIGKILLed here, inside the session
"""


def _arena_names() -> set:
    return {p for folder in ("/dev/shm", tempfile.gettempdir()) for p in glob.glob(f"{folder}/genbench-decode-*")}


def _wait_until_gone(pids, seconds: float = 8.0) -> set:
    deadline = time.monotonic() + seconds
    while True:
        alive = set()
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":  # a zombie holds no memory
                        alive.add(pid)
            except OSError:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nameless files need Linux")


@LINUX
def test_a_killed_process_leaves_no_arena_behind(tmp_path):
    """A process SIGKILLed inside a decode session (a torchrun rank killed, a Slurm preemption):
    its arena never had a name (workers map it through /proc), so nothing is left in /dev/shm or
    the temp dir, and its workers end with it (orphans would hold the arena's memory)."""
    images = digit_images(0, 4)
    folder = write_pngs(tmp_path / "imgs", images)
    before = _arena_names()
    child = subprocess.Popen([sys.executable, "-c", _IN_A_SESSION, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        inside = json.loads(child.stdout.readline())
        assert inside["images"] == [hashlib.sha1(img.tobytes()).hexdigest() for img in images]
        arena = os.stat(inside["arena"])  # /proc/<pid>/fd/<fd>
        assert arena.st_nlink == 0 and arena.st_size > 0, "the arena has a name in some folder"
        for pid in inside["workers"]:  # each worker maps that very file, nameless
            with open(f"/proc/{pid}/maps") as f:
                maps = [line.split() for line in f]
            mine = [m for m in maps if len(m) > 5 and m[4] == str(arena.st_ino) and m[1].endswith("s")]
            assert mine and all(m[-1] == "(deleted)" for m in mine), f"worker {pid} does not map the arena"
        assert _arena_names() == before
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert not _wait_until_gone(inside["workers"]), "workers outlived the process that started them"
    assert _arena_names() == before


def test_arena_replaced_workers_follow(tmp_path):
    """A larger batch replaces the arena (the new one likely gets the old one's fd, and so its
    /proc path): the workers map the new one, and the images come out right."""
    from genbench.features.loaders import FileImage

    images = digit_images(0, 6)
    loaders = [FileImage(p) for p in sorted(write_pngs(tmp_path / "imgs", images).iterdir())]
    pool = decode_workers.DecodePool(2)
    keys = []
    try:
        for batch in (2, 5):  # grows: a new arena
            with pool.session(batch, None, 32) as session:
                for slot, start in enumerate(range(0, len(loaders), batch)):
                    got = session.collect(session.submit(loaders[start: start + batch], slot % session.slots))
                    np.testing.assert_array_equal(np.stack(got.images), images[start: start + batch])
                keys.append(session.arena.key)
    finally:
        pool.close()
    assert keys[0] != keys[1]


@LINUX
@pytest.mark.parametrize("where", ["shm", "tempdir", "tempdir without O_TMPFILE"])
def test_the_arena_file_has_no_name(where, monkeypatch):
    """/dev/shm with room: a memfd; too small: an unnamed file in the temp dir (O_TMPFILE, or
    named for a moment where the file system lacks it). What a worker writes through the path
    it is given, the parent reads; close() lets the file go."""
    if where == "shm" and decode_arena._free_bytes("/dev/shm") < 2**20:
        pytest.skip("no room in /dev/shm here")
    if where != "shm":
        monkeypatch.setattr(decode_arena, "_free_bytes", lambda folder: 0)
    if where == "tempdir without O_TMPFILE":
        monkeypatch.setattr(os, "O_TMPFILE", os.O_DIRECTORY)  # opening the folder read-write: EISDIR
    before = _arena_names()
    arena = decode_arena._Arena(slots=3, batch=2, capacity=4096)
    try:
        link = os.readlink(arena.path)
        assert os.fstat(arena.fd).st_nlink == 0 and _arena_names() == before
        # a memfd (or, where a sandbox refuses memfd_create, an unnamed file in /dev/shm)
        folders = ("/memfd:genbench-decode", "/dev/shm/") if where == "shm" else (tempfile.gettempdir(),)
        assert link.startswith(folders) and link.endswith("(deleted)"), link
        with open(arena.path, "r+b") as f, mmap.mmap(f.fileno(), arena.nbytes) as worker_view:
            worker_view[arena.offset(2, 1): arena.offset(2, 1) + 3] = b"abc"
        assert bytes(arena.array[arena.offset(2, 1):][:3]) == b"abc"
    finally:
        inode = os.fstat(arena.fd).st_ino
        arena.close()
    assert arena.fd is None and inode not in _open_inodes() and _arena_names() == before


def _open_inodes() -> set:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            inodes.add(os.stat(f"/proc/self/fd/{fd}").st_ino)
        except OSError:  # the listing's own descriptor
            pass
    return inodes
