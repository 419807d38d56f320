import numpy as np
import pytest

from genbench import data
from genbench.errors import UserError


def test_digits_splits_are_fixed_disjoint_and_cover_the_set():
    sizes = {s: len(data.digits_arrays(s)[0]) for s in data.SPLITS}
    assert sizes == {"train": 1197, "val": 200, "test": 400}
    x, y = data.digits_arrays("test")
    assert x.shape == (400, 8, 8, 1) and x.dtype == np.uint8 and y.min() >= 0 and y.max() <= 9
    rows = {bytes(r) for s in data.SPLITS for r in data.digits_arrays(s)[0].reshape(-1, 64)}
    assert len(rows) > 1700  # disjoint cut of a permutation (a few digits are exact duplicates)
    np.testing.assert_array_equal(x, data.digits_arrays("test")[0])


def test_levels_round_trip_exactly():
    levels = np.arange(17)
    img = data.levels_to_image(levels)
    assert img[0] == 0 and img[-1] == 255 and len(set(img)) == 17
    np.testing.assert_array_equal(data.image_to_levels(img), levels)
    x, _ = data.digits_arrays("train")
    assert len(np.unique(x)) <= 17


def test_kjv_is_split_by_book():
    books = {s: data.kjv_texts(s) for s in data.SPLITS}
    assert [len(books[s]) for s in data.SPLITS] == [53, 7, 6]
    assert books["train"][0].startswith("In the beginning God created the heaven and the earth.")
    assert not set(books["test"]) & set(books["train"])
    ds = data.kjv("test")
    assert ds.num_rows == 6 and ds.column_names == ["book", "text"]


def test_a_changed_file_is_refused(monkeypatch):
    monkeypatch.setattr(data, "KJV_SHA256", "0" * 64)
    data._kjv_books.cache_clear()
    try:
        with pytest.raises(UserError, match="sha256"):
            data.kjv_texts("test")
    finally:
        data._kjv_books.cache_clear()


def test_unknown_split():
    with pytest.raises(UserError, match="use one of train, val, test"):
        data.digits_arrays("validation")
