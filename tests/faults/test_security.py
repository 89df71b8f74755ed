"""Inputs never run code: coefficient strings (item 1) and pickles in .ckpt / .pt files (item 2)."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import sympy as sp
import torch

from flowlab import FlowlabError
from flowlab.conventions import T, Convention

MARK = "PWNED"
# Each payload, if evaluated, creates the file MARK in the working directory.
INJECTIONS = [
    f"__import__('os').system('touch {MARK}') + t",                       # __import__
    f"t + __builtins__.__import__('os').system('touch {MARK}')",           # builtins attribute chain
    f"(lambda: __import__('os').system('touch {MARK}'))() + t",            # lambda
    f"t.__class__.__mro__[-1].__subclasses__() and open('{MARK}', 'w') and t",  # dunder access, subscript
    f"sin.__globals__['__builtins__']['__import__']('os').system('touch {MARK}')",  # attribute chain via a function
    f"exec(\"open('{MARK}', 'w')\") or t",                                 # exec
    f"[open('{MARK}', 'w') for _ in [1]][0] and t",                        # comprehension
    f"Symbol('t').func.__init__.__globals__",                              # SymPy object graph
    f"cos(t, evaluate=open('{MARK}', 'w'))",                               # keyword argument
    f"t if open('{MARK}', 'w') else t",                                    # conditional
]


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("where", ["alpha", "beta", "t_noise"])
def test_coefficient_strings_are_never_executed(payload: str, where: str, in_tmp: Path) -> None:
    kw = dict(alpha="t", beta="1 - t", t_noise=0, t_data=1)
    kw[where] = payload
    with pytest.raises(FlowlabError, match="only numbers") as e:
        Convention.affine("evil", kw.pop("alpha"), kw.pop("beta"), **kw)
    assert not (in_tmp / MARK).exists(), "the string was executed"
    assert f"convention 'evil': {where}" in str(e.value)


@pytest.mark.parametrize("text, expected", [
    ("1 - t", 1 - T),
    ("cos(pi*t/2)", sp.cos(sp.pi * T / 2)),
    ("-t**2 + 2*t", 2 * T - T**2),
    ("sqrt(1 - t**2)", sp.sqrt(1 - T**2)),
    ("exp(-t) * (1 + 0.5*t)", sp.exp(-T) * (1 + sp.Rational(1, 2) * T)),
    ("+t", T),
])
def test_allowed_formulas_read_exactly(text: str, expected: sp.Expr) -> None:
    from flowlab.conventions import parse_expression

    assert sp.simplify(parse_expression(text) - expected) == 0


@pytest.mark.parametrize("text, why", [
    ("t**100000", "exponent"), ("9**9**9", "exponent"), ("x + t", "the name 'x' is not known"),
    ("t +", "cannot parse"), ("'t'", "not a real number"), ("t" * 600, "too long"), ("1/0", "division by zero"),
])
def test_refused_formulas_say_why(text: str, why: str) -> None:
    from flowlab.conventions import parse_expression

    with pytest.raises(FlowlabError, match=why):
        parse_expression(text)


class _Payload:
    """Unpickling this would create MARK (pickle calls os.system)."""

    def __reduce__(self):
        return (os.system, (f"touch {MARK}",))


def _ckpt_with(tmp: Path, extra: object) -> Path:
    from flowlab.shape.verify.tiny import tiny_pipeline, write_checkpoint_folder

    w = write_checkpoint_folder(tiny_pipeline(0), tmp / "m", fmt="ckpt", variant=None)
    obj = torch.load(str(w), weights_only=True)
    obj["extra"] = extra
    torch.save(obj, str(w))
    return w


def test_ckpt_with_code_is_refused_in_flowlabs_words(in_tmp: Path) -> None:
    pytest.importorskip("yaml")
    from flowlab.shape.load.folder import load_pipeline

    _ckpt_with(in_tmp, _Payload())
    with pytest.raises(FlowlabError) as e:
        load_pipeline(in_tmp / "m", variant=None)
    msg = str(e.value)
    assert "holds more than tensors: its pickle refers to posix.system" in msg or "os.system" in msg
    assert "flowlab will not unpickle it" in msg and "safetensors" in msg
    assert "weights_only set to False" not in msg and "Re-running" not in msg
    assert not (in_tmp / MARK).exists()


@pytest.mark.parametrize("data", [bytes(range(256)) * 20, b"\x80\x04" + bytes(range(255, -1, -1)) * 10, b"PK\x03\x04junk"])
def test_random_bytes_are_damaged_not_more_than_tensors(data: bytes, tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    from flowlab.shape.load.folder import load_pipeline

    w = _ckpt_with(tmp_path, 1)
    w.write_bytes(data)
    with pytest.raises(FlowlabError) as e:
        load_pipeline(tmp_path / "m", variant=None)
    msg = str(e.value)
    assert "more than tensors" not in msg and "weights_only" not in msg
    assert "not a PyTorch file" in msg or "damaged" in msg


def test_pt_embedding_with_code_is_refused(in_tmp: Path) -> None:
    from flowlab.shape.load.embedding import load_embedding

    with open(in_tmp / "cond.pt", "wb") as fh:
        pickle.dump({"cond": _Payload()}, fh, protocol=4)
    with pytest.raises(FlowlabError, match="holds more than tensors") as e:
        load_embedding(in_tmp / "cond.pt")
    assert "weights_only set to False" not in str(e.value)
    assert not (in_tmp / MARK).exists()


@pytest.mark.parametrize("payload", INJECTIONS[:4])
def test_jump_to_endpoint_strings_are_never_executed(payload: str, in_tmp: Path) -> None:
    from flowlab import symbolic

    with pytest.raises(FlowlabError, match="only numbers"):
        symbolic.jump_to(payload)
    assert not (in_tmp / MARK).exists(), "the string was executed"
    # numbers and allowed text still work
    assert sp.simplify(symbolic.jump_to("1") - symbolic.jump_to(1)) == 0
