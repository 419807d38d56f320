"""Moved to ``genbench.features`` (one module per role); this name stays for branches in flight.
Import from ``genbench.features.*`` in new code."""
from genbench.features.crop import center_crop_arr  # noqa: F401
from genbench.features.decode import decode_image, load_image  # noqa: F401
from genbench.features.folder import (IMAGE_EXTENSIONS, ImageFolder, iter_image_batches,  # noqa: F401
                                      list_image_files, load_image_folder)
from genbench.features.hf_datasets import HF_PREFIX, DatasetImages, parse_hf_source  # noqa: F401
from genbench.features.quantise import QUANTISATION_RULES, float_images_to_uint8  # noqa: F401
