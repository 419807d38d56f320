"""``DatasetImages("hf:PATH[:SPLIT]")`` reads the images of anything Hugging Face ``datasets``
loads offline: a directory written by ``save_to_disk``, an ``imagefolder`` directory (one
subfolder per split), or a hub data set already in the local cache. Rows are decoded by the
same code as files (same errors, naming the row and its file), and hashed row by row."""
from __future__ import annotations

import hashlib
from pathlib import Path

from genbench.errors import UserError
from genbench.features.decode import ALPHA_OPTIONS, GREY_OPTIONS, check_option
from genbench.features.loaders import EncodedImage

HF_PREFIX = "hf:"
#: rows whose encoded bytes are read from the Arrow table at a time
HF_CHUNK = 1000


def parse_hf_source(text: str) -> tuple[str, str | None]:
    """``hf:PATH[:SPLIT]`` -> (PATH, SPLIT or None). The split is what follows the last colon."""
    body = text[len(HF_PREFIX):] if text.startswith(HF_PREFIX) else text
    if not body:
        raise UserError(f"{text!r}: write hf:PATH[:SPLIT], PATH a save_to_disk or imagefolder directory "
                        f"or a cached hub data set")
    path, sep, split = body.rpartition(":")
    if not sep or not path or "/" in split:
        return body, None
    return path, split


def _load_hf(path: str, split: str | None, label: str):
    """A ``datasets.Dataset`` (one split) from a directory or the local hub cache, never the network."""
    import tempfile

    import datasets

    root = Path(path)
    try:
        if root.is_dir() and ((root / "state.json").is_file() or (root / "dataset_dict.json").is_file()):
            loaded = datasets.load_from_disk(str(root))
        elif root.is_dir():
            # an imagefolder: datasets writes an Arrow copy of the file list; keep it in memory
            with tempfile.TemporaryDirectory(prefix="genbench-imagefolder-") as cache:
                loaded = datasets.load_dataset("imagefolder", data_dir=str(root), cache_dir=cache,
                                               keep_in_memory=True)
        elif root.exists():
            raise UserError(f"{label}: {root} is a file; hf:PATH names a save_to_disk or imagefolder directory")
        else:
            import os

            os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # genbench never downloads data
            loaded = datasets.load_dataset(path)
    except UserError:
        raise
    except Exception as e:  # FileNotFoundError, DatasetNotFoundError, ConnectionError...
        raise UserError(f"{label}: datasets cannot load {path} offline ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); give a save_to_disk or imagefolder "
                        f"directory, or a hub data set already in the local cache") from None
    if isinstance(loaded, datasets.DatasetDict):
        names = sorted(loaded)
        if split is None:
            if len(names) != 1:
                raise UserError(f"{label}: the data set has splits {', '.join(names)}; name one: "
                                f"hf:{path}:SPLIT")
            split = names[0]
        if split not in loaded:
            raise UserError(f"{label}: no split {split!r}; the data set has {', '.join(names)}")
        return loaded[split], split
    own = str(loaded.split) if loaded.split is not None else None
    if split is not None and own is not None and split != own:
        raise UserError(f"{label}: this saved data set is the {own!r} split, not {split!r}")
    return loaded, split or own


class DatasetImages:
    """The images of a ``datasets`` data set (``hf:PATH[:SPLIT]``), in row order.

    column: the image column (default: the only column of ``datasets.Image`` type).
    grey / alpha: as for :class:`ImageFolder`.
    """

    def __init__(self, source: str, *, grey: str = "error", alpha: str = "error", column: str | None = None):
        import datasets

        check_option("grey", grey, GREY_OPTIONS)
        check_option("alpha", alpha, ALPHA_OPTIONS)
        path, split = parse_hf_source(source)
        self.grey, self.alpha = grey, alpha
        ds, self.split = _load_hf(path, split, source)
        self.label = f"{HF_PREFIX}{path}" + (f":{self.split}" if self.split else "")
        image_columns = [k for k, v in ds.features.items() if isinstance(v, datasets.Image)]
        if column is None:
            if len(image_columns) != 1:
                raise UserError(f"{self.label}: {'no' if not image_columns else 'several'} image columns "
                                f"({', '.join(image_columns) or 'columns: ' + ', '.join(ds.column_names)}); "
                                f"name the one to use (column=...)")
            column = image_columns[0]
        elif column not in image_columns:
            raise UserError(f"{self.label}: column {column!r} does not hold images; image columns: "
                            f"{', '.join(image_columns) or 'none'}")
        if len(ds) == 0:
            raise UserError(f"{self.label}: the split holds no rows")
        self.column = column
        # undecoded: {"bytes", "path"} per row, so decoding (and its errors) is genbench's own
        self.dataset = ds.select_columns([column]).cast_column(column, datasets.Image(decode=False))
        self._hash: str | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __repr__(self) -> str:
        return f"DatasetImages({self.label!r}, {len(self)} images)"

    def _raw(self, start: int, stop: int) -> list[tuple[str, bytes]]:
        """(name for messages, encoded bytes) of rows start..stop-1."""
        out = []
        for i, cell in enumerate(self.dataset[start:stop][self.column], start):
            name = f"{self.label} row {i}" + (f" ({cell['path']})" if cell.get("path") else "")
            data = cell.get("bytes")
            if data is None:
                if not cell.get("path"):
                    raise UserError(f"{name}: the row holds neither image bytes nor a file path")
                try:
                    data = Path(cell["path"]).read_bytes()
                except OSError as e:
                    raise UserError(f"{name}: cannot read ({e.strerror or e})") from None
            out.append((name, data))
        return out

    def chunks(self, rows: int | None = None):
        """Lists of loaders (``EncodedImage``), each decoding one row to uint8 (H, W, 3)."""
        rows = rows or HF_CHUNK
        for start in range(0, len(self), rows):
            yield [EncodedImage(name, data, self.grey, self.alpha)
                   for name, data in self._raw(start, min(start + rows, len(self)))]

    def content_hash(self) -> str:
        """sha256 over the split name and the sha256 of every row's encoded image, in row order."""
        if self._hash is None:
            outer = hashlib.sha256(f"genbench-hf-images-v1\n{self.split}\n".encode())
            for start in range(0, len(self), HF_CHUNK):
                for i, (_, data) in enumerate(self._raw(start, min(start + HF_CHUNK, len(self))), start):
                    outer.update(f"{i}\0{hashlib.sha256(data).hexdigest()}\n".encode())
            self._hash = outer.hexdigest()
        return self._hash


__all__ = ["HF_PREFIX", "DatasetImages", "parse_hf_source"]
