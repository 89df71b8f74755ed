"""Mutation testing of the exercise checks (tools/mutation_exercises.py): every mutant of an official solution
that computes something different (decided by an oracle on random inputs, not by the check) must be rejected,
every known mistake too, and every correct answer in another form must pass. A fast subset runs in the normal
suite, all fourteen exercises behind ``slow``."""
from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

from flowlab.exercises import EXERCISES, Result

TOOL = Path(__file__).resolve().parent.parent / "tools" / "mutation_exercises.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("mutation_exercises", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _assert_all_killed(score) -> None:
    assert not score.survivors, [(d, t) for d, t, _ in score.survivors]
    assert not score.known_failures, score.known_failures
    assert not score.right_failures, score.right_failures
    assert score.right >= 5 and score.right_passed == score.right
    assert score.known >= 2 and score.known_rejected == score.known
    assert score.mutants - score.equivalent >= 10 and score.score == 100.0


@pytest.mark.parametrize("number", [3, 6, 13])
def test_fast_subset_kills_every_non_equivalent_mutant(tool, number, one_thread):
    _assert_all_killed(tool.score_exercise(EXERCISES[number - 1]))


@pytest.mark.slow
@pytest.mark.parametrize("ex", EXERCISES, ids=[f"ex{ex.number:02d}" for ex in EXERCISES])
def test_every_exercise_kills_every_non_equivalent_mutant(tool, ex, one_thread):
    _assert_all_killed(tool.score_exercise(ex))


def test_a_check_that_passes_everything_scores_low(tool, one_thread):
    """The tool can fail: a check that says PASS to anything lets the mutants survive."""
    ex = EXERCISES[2]

    def lenient(fn):
        return Result(ex.number, "x", "pass", "PASS")

    lenient.__name__ = ex.check.__name__  # the tool finds the solution cell by the check's name

    score = tool.score_exercise(dataclasses.replace(ex, check=lenient))
    assert not score.ok and score.score < 10 and len(score.survivors) >= 15
    assert len(score.known_failures) == score.known


def test_mutants_cover_the_kinds_the_issue_lists(tool):
    ex = EXERCISES[11]  # sample_hunyuan: a loop, slices, counts, a dtype, an update line
    kinds = " | ".join(desc for desc, _ in tool.mutants(tool.solution_source(ex)))
    for kind in ("Add -> Sub", "t -> 1 - t", "t -> t_next", "slice upper", "constant 1 -> 2", "in-place",
                 "return .float()", "drop right operand", "drop statement", ".float64 -> .float32"):
        assert kind in kinds or kind.replace(".float64 -> .float32", "drop keyword dtype") in kinds, kind
    source = tool.solution_source(EXERCISES[4])  # shift_reversed: u = 1 - t
    assert any("u -> t" in d or "t -> u" in d for d, _ in tool.mutants(source))


def test_the_oracle_tells_a_different_answer_from_an_equivalent_one(tool):
    ex = EXERCISES[2]
    setup = tool.setup_namespace(ex)
    ref = tool.observe(ex, tool.run_answer(ex, tool.solution_source(ex), setup)[0], None)
    same = tool.run_answer(ex, "def pred_data_reversed(x, v, t):\n    return x + v - t[:, None] * v", setup)
    in_place = tool.run_answer(ex, "def pred_data_reversed(x, v, t):\n    return x.add_((1 - t[:, None]) * v)", setup)
    wrong = tool.run_answer(ex, "def pred_data_reversed(x, v, t):\n    return x + (1 - t[:, None]) * v * 1.001", setup)
    assert tool.equivalent(ex, ref, *same)
    assert not tool.equivalent(ex, ref, *in_place) and not tool.equivalent(ex, ref, *wrong)
