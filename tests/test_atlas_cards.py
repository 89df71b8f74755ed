"""The cards themselves: complete, findable, and every verifier passes with the pinned libraries."""
from __future__ import annotations

import importlib.metadata
import importlib.util

import pytest

from flowlab import CONVENTIONS, FlowlabError
from flowlab import atlas
from flowlab.atlas import CARDS, PINS, card, verify

_NEEDS = {"diffusers-euler": "diffusers", "diffusers-heun": "diffusers", "ddim": "diffusers",
          "flow-matching": "flow_matching", "torchcfm": "torchcfm", "k-diffusion": "k_diffusion",
          "hunyuan3d2": None}


def test_every_card_is_complete_and_maps_to_a_convention():
    assert sorted(c.key for c in CARDS) == sorted(_NEEDS)
    for c in CARDS:
        for name, value in c.as_dict().items():
            assert value, f"{c.key}.{name} is empty"
        assert c.convention.split(" ")[0] in CONVENTIONS
        assert "no guidance" in c.guidance or "none" in c.guidance


def test_unknown_card_suggests():
    with pytest.raises(FlowlabError, match="Did you mean diffusers-euler"):
        card("diffusers-eular")


@pytest.mark.parametrize("key", list(_NEEDS))
def test_card_verifier_passes(key):
    module = _NEEDS[key]
    if module is not None and importlib.util.find_spec(module) is None:
        pytest.skip(f"needs {module} (see flowlab.atlas.PINS)")
    rows = verify(key)
    assert rows, "a verifier must measure something"
    for m in rows:
        assert m.card == key
        assert m.passed, f"{m.statement}: {m.error:.3e} > {m.tol:.0e}"


@pytest.mark.parametrize("dist", sorted(PINS))
def test_installed_versions_match_the_pins(dist):
    try:
        got = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{dist} not installed")
    assert got == PINS[dist], f"{dist} {got} installed, cards verified with {PINS[dist]}"


def test_require_names_the_pip_line():
    with pytest.raises(FlowlabError, match="pip install"):
        atlas.require("flowlab_no_such_module")
