"""``clip:ARCH:FILE``: encode_image of clean-fid's CLIP input."""
from __future__ import annotations

import numpy as np
import pytest

import genbench  # noqa: F401  (before torchvision / clean-fid: installs the torchvision shim)
from genbench.errors import UserError
from genbench.features.build import build_extractor
from genbench.features.extractor_clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from genbench.features.weights import file_sha256
from tests.harness.features.helpers import digit_images, tiny_clip
from tests.reference import assert_matches_reference

torch = pytest.importorskip("torch")


def test_clip_extractor_is_encode_image_of_clean_fids_input(tmp_path, tiny_file):
    import open_clip
    from PIL import Image
    from torchvision import transforms

    cfg, weights = tiny_clip(tmp_path)
    ex = build_extractor(f"clip:{cfg}:{weights}")
    d = ex.describe()
    assert d["resize"] == "clip" and d["dim"] == 8 and d["weights_sha256"] == file_sha256(weights)
    images = [*digit_images(0, 3), *digit_images(3, 2, size=48)]
    ours = ex.features(images, batch_size=2)

    # clean-fid's CLIP_fx on img_preprocess_clip's output, with the weights loaded here
    model = open_clip.create_model("tinyclip", pretrained=None, load_weights=False)
    open_clip.load_checkpoint(model, str(weights))
    prep = transforms.Compose([transforms.Resize(32, interpolation=transforms.InterpolationMode.BICUBIC),
                               transforms.CenterCrop(32)])
    x = torch.stack([torch.from_numpy(np.asarray(prep(Image.fromarray(im))).transpose(2, 0, 1).copy())
                     for im in images]).float() / 255
    norm = transforms.Normalize(OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    with torch.no_grad():
        ref = model.eval().encode_image(norm(x)).double().numpy()
    assert_matches_reference(ours, ref, rtol=1e-5, atol=1e-6, what="CLIP features vs clean-fid's CLIP pipeline")

    with pytest.raises(UserError, match="never downloads"):
        build_extractor("clip:ViT-B-32")
    with pytest.raises(UserError, match=r"missing\.pt.*never downloads"):
        build_extractor(f"clip:ViT-B-32:{tmp_path / 'missing.pt'}")
    with pytest.raises(UserError, match="hf-hub"):
        build_extractor(f"clip:hf-hub:org/model:{weights}")
    with pytest.raises(UserError, match=r"tiny\.pt: not weights of open_clip"):
        build_extractor(f"clip:{cfg}:{tiny_file}")


def test_building_the_extractor_does_not_log_that_the_model_is_random(tmp_path, caplog):
    """open_clip logs "initialized randomly" for the empty model genbench fills with FILE's weights:
    a user of `genbench fid --extractor clip:ARCH:FILE` must not see it; other logging is untouched."""
    import logging

    cfg, weights = tiny_clip(tmp_path)  # (which builds a random model itself, and logs so)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        build_extractor(f"clip:{cfg}:{weights}")
        logging.getLogger().warning("still logged")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == ["still logged"]
