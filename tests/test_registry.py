"""kifaru.registry: one kind of component by name."""

from __future__ import annotations

import pytest

from kifaru.exceptions import ConfigError
from kifaru.registry import Registry


def _colours() -> Registry[int]:
    colours: Registry[int] = Registry("colour")
    for value, name in enumerate(("red", "green", "blue")):
        colours.register(name, value)
    return colours


def test_names_sorted_items_in_the_order_declared():
    colours = _colours()
    assert colours["green"] == 1 and colours.get("pink") is None
    assert colours.names() == ["blue", "green", "red"]
    assert colours.items() == [("red", 0), ("green", 1), ("blue", 2)]
    assert list(colours) == ["red", "green", "blue"] and len(colours) == 3 and "blue" in colours


def test_an_unknown_name_lists_the_known_ones_with_a_hint():
    with pytest.raises(ConfigError) as caught:
        _colours()["gren"]
    assert str(caught.value) == "unknown colour 'gren' (did you mean 'green'?); known colours: blue, green, red"
    assert isinstance(caught.value, ValueError)  # so pydantic validators report it as the field's error
    assert Registry("model class", "model classes").unknown("x") == "unknown model class 'x'; known model classes: "


def test_a_name_registered_twice_is_refused():
    colours = _colours()
    with pytest.raises(ValueError, match="colour 'red' is registered twice"):
        colours.register("red", 0)
    assert colours["red"] == 0


def test_monkeypatch_can_replace_and_restore(monkeypatch):
    colours = _colours()
    with monkeypatch.context() as patch:
        patch.setitem(colours, "pink", 9)
        patch.setitem(colours, "red", 7)
        assert colours["pink"] == 9 and colours["red"] == 7
    assert "pink" not in colours and colours["red"] == 0
