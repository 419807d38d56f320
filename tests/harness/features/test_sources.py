"""Image sources: data set names, bad folders named by file, hf: data sets, ADM's centre crop."""
from __future__ import annotations

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench.features.statistics import path_to_statistics
from tests.harness.features.helpers import N, digit_images, fresh_folder, save_hf, write_pngs
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")


def test_dataset_names(data, tmp_path):
    net = f"torchscript:{data['net']}"
    s = path_to_statistics("digits:val", net, cache_dir=tmp_path / "c")
    assert s.n == 200 and s.source == "digits:val" and "replicated" in s.preprocessing["grey"]
    with pytest.raises(UserError, match="unknown split"):
        path_to_statistics("digits:everything", net, cache_dir=tmp_path / "c")


# --- bad image folders ------------------------------------------------------------------------------------
def test_bad_folders_name_the_file(data, tmp_path):
    from PIL import Image

    net = f"torchscript:{data['net']}"

    def stats(folder, **kw):
        return path_to_statistics(folder, net, use_cache=False, **kw)

    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(UserError, match=r"empty.*empty folder"):
        stats(empty)

    corrupt = fresh_folder(tmp_path, "corrupt", n=3)
    (corrupt / "img_001.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(UserError, match=r"img_001\.png.*corrupt"):
        stats(corrupt)

    truncated = fresh_folder(tmp_path, "truncated", n=3)
    raw = (truncated / "img_002.png").read_bytes()
    (truncated / "img_002.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match=r"img_002\.png"):
        stats(truncated)

    grey = fresh_folder(tmp_path, "grey", n=3)
    Image.fromarray(digit_images(50, 1)[0][..., 0]).save(grey / "img_001.png")  # mode L among RGB
    with pytest.raises(UserError, match=r"img_001\.png.*greyscale.*--grey convert"):
        stats(grey)
    assert stats(grey, grey="convert").n == 3  # explicit conversion is allowed

    alpha = fresh_folder(tmp_path, "alpha", n=3)
    rgba = np.concatenate([digit_images(50, 1)[0], np.full((32, 32, 1), 100, np.uint8)], axis=-1)
    Image.fromarray(rgba).save(alpha / "img_000.png")
    with pytest.raises(UserError, match=r"img_000\.png.*transparency"):
        stats(alpha)
    assert stats(alpha, alpha="drop").n == 3

    mixed = fresh_folder(tmp_path, "mixed", n=3)
    write_pngs(mixed / "deeper", digit_images(60, 2, size=48), prefix="big")
    assert stats(mixed).n == 5  # FID resizes each image: mixed sizes are fine (and recursive)
    from genbench.features.folder import ImageFolder, load_image_folder

    with pytest.raises(UserError, match=r"img_000\.png.*32x32.*big_000\.png.*48x48"):
        load_image_folder(mixed)
    assert ImageFolder(mixed).relative_names()[0] == "deeper/big_000.png"


def test_hf_datasets_sources(data, tmp_path):
    net = f"torchscript:{data['net']}"
    images_a, images_b = digit_images(0, N), digit_images(200, N, shift=12)
    folder_a = path_to_statistics(data["a"], net, use_cache=False)
    saved = save_hf(tmp_path / "saved", {"test": images_a, "train": images_b})
    cache = tmp_path / "cache"
    s = path_to_statistics(f"hf:{saved}:test", net, cache_dir=cache)
    assert s.kind == "hf" and s.n == N and s.source == f"hf:{saved}:test"
    assert_matches_reference(s.mu, folder_a.mu, rtol=1e-12, what="hf save_to_disk vs folder, mu")
    assert_matches_reference(s.sigma, folder_a.sigma, rtol=1e-12, atol=1e-15, what="hf vs folder, sigma")
    assert path_to_statistics(f"hf:{saved}:test", net, cache_dir=cache).from_cache
    with pytest.raises(UserError, match=r"splits test, train; name one"):
        path_to_statistics(f"hf:{saved}", net, use_cache=False)
    with pytest.raises(UserError, match=r"no split 'val'"):
        path_to_statistics(f"hf:{saved}:val", net, use_cache=False)

    # an imagefolder (one subfolder per split): same images, same statistics; an edit is a new key
    imagefolder = tmp_path / "imagefolder"
    write_pngs(imagefolder / "train", images_a)
    write_pngs(imagefolder / "test", images_b)
    t = path_to_statistics(f"hf:{imagefolder}:train", net, cache_dir=cache)
    assert_matches_reference(t.mu, folder_a.mu, rtol=1e-12, what="hf imagefolder vs folder")
    write_pngs(imagefolder / "train", digit_images(77, 1))
    t2 = path_to_statistics(f"hf:{imagefolder}:train", net, cache_dir=cache)
    assert not t2.from_cache and t2.cache_file != t.cache_file

    # a bad row is named; a hub data set that is not cached is refused offline
    broken = save_hf(tmp_path / "broken", {"test": images_a[:3]})
    import datasets

    ds = datasets.load_from_disk(str(broken))["test"].cast_column("image", datasets.Image(decode=False))
    ds = ds.map(lambda row, i: {"image": {"bytes": row["image"]["bytes"][:40] if i == 1 else row["image"]["bytes"],
                                          "path": None}}, with_indices=True)
    ds.save_to_disk(str(tmp_path / "broken_rows"))
    with pytest.raises(UserError, match=r"broken_rows row 1.*(truncated|corrupt)"):
        path_to_statistics(f"hf:{tmp_path / 'broken_rows'}", net, use_cache=False)
    with pytest.raises(UserError, match="cannot load no-such-org/no-such-set offline"):
        path_to_statistics("hf:no-such-org/no-such-set", net, use_cache=False)


def test_center_crop_is_adms_and_keys_the_cache(data, tmp_path):
    from genbench.features.crop import center_crop_arr

    net = f"torchscript:{data['net']}"
    images = digit_images(0, 6, size=48)[:, :, 4:44]  # 40 wide, 48 high
    source = write_pngs(tmp_path / "uncropped", images)
    cropped = write_pngs(tmp_path / "cropped", np.stack([center_crop_arr(im, 16) for im in images]))
    cache = tmp_path / "cache"
    s = path_to_statistics(source, net, cache_dir=cache, center_crop=16)
    ref = path_to_statistics(cropped, net, use_cache=False)
    assert_matches_reference(s.mu, ref.mu, rtol=1e-12, what="centre-cropped folder vs folder of crops")
    plain = path_to_statistics(source, net, cache_dir=cache)
    assert plain.cache_file != s.cache_file and not np.allclose(plain.mu, s.mu)
    saved = save_hf(tmp_path / "saved", {"validation": images})
    h = path_to_statistics(f"hf:{saved}", net, use_cache=False, center_crop=16)
    assert_matches_reference(h.mu, ref.mu, rtol=1e-12, what="centre-cropped hf data set")


def test_listing_is_pathlibs(tmp_path):
    """The scandir listing finds what ``rglob`` finds, in the same order: subfolders, any case of
    extension, symlinked files but not symlinked folders, dot-named files as pathlib names them."""
    from genbench.features.folder import IMAGE_EXTENSIONS, list_image_files

    root = tmp_path / "tree"
    for name in ("b.png", "a.PNG", "c.txt", "sub/x.jpg", "sub/deeper/y.webp", "sub-z.bmp", ".png", "z/.hidden.jpeg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    (root / "dir.png").mkdir()
    (root / "link.png").symlink_to(root / "b.png")
    (root / "linked").symlink_to(root / "sub", target_is_directory=True)
    for recursive in (True, False):
        walker = root.rglob("*") if recursive else root.iterdir()
        want = sorted((p for p in walker if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                      key=lambda p: p.relative_to(root).as_posix())
        assert list_image_files(root, recursive=recursive) == want
    assert [p.relative_to(root).as_posix() for p in list_image_files(root)][:3] == ["a.PNG", "b.png", "link.png"]
