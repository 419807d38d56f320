"""Placeholder: filled in by the torchvision shim work."""


def make_torchvision_importable() -> None:
    return None
