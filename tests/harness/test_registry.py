
import pytest

from genbench.registry import ADAPTERS, EXTRACTORS, SUITES, Registry, UnknownNameError, split_adapter_spec


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownNameError) as e:
        SUITES.get("likelyhood")
    assert "'likelihood'" in str(e.value) and "genbench list suites" in str(e.value)
    with pytest.raises(UnknownNameError, match="ar-digits"):
        ADAPTERS.get("ar-digit")
    with pytest.raises(UnknownNameError) as e:
        ADAPTERS.get("zzzzzz")
    assert "Did you mean" not in str(e.value)


def test_lazy_entries_import_only_when_used():
    names = ADAPTERS.names()
    assert {"ar-digits", "masked-digits", "diffusion-digits", "ar-kjv", "masked-kjv"} <= set(names)
    assert "digits-classifier" in EXTRACTORS.names()
    assert {"image_quality", "likelihood", "speed", "text_quality", "tokenizer"} <= set(SUITES.names())
    reg = Registry("thing")
    reg.register("json-dumps", lazy="json:dumps")
    assert isinstance(reg._entries["json-dumps"], str)
    import json

    assert reg.get("json-dumps") is json.dumps


def test_decorator_registration_and_duplicates():
    reg = Registry("widget")

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A
    reg.register("a", A)  # the same object again is fine (module re-import)

    class Other:
        pass

    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", Other)


def test_entry_point_adapters_are_found(monkeypatch):
    from importlib import metadata

    ep = metadata.EntryPoint(name="third-party", value="json:loads", group="genbench.adapters")
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [ep] if group == "genbench.adapters" else [])
    reg = Registry("adapter", entry_point_group="genbench.adapters")
    import json

    assert "third-party" in reg.names() and reg.get("third-party") is json.loads


def test_adapter_spec_with_path():
    assert split_adapter_spec("ar-digits") == ("ar-digits", None)
    assert split_adapter_spec("hf-causal-lm:/models/gpt2") == ("hf-causal-lm", "/models/gpt2")


def test_a_lazy_string_after_the_real_object_keeps_the_object():
    reg = Registry("thing")
    import json

    reg.register("dumps", json.dumps)
    reg.register("dumps", lazy="json:dumps")
    assert reg.get("dumps") is json.dumps
