"""The defects issue 18 found in the exercise checks and notebooks, each pinned by a test: wrong answers
that passed (a mirror flip on a symmetric mixture, in-place writes, float32 for float64, calls of flowlab's
own solution), hints naming a mistake the student did not make, PASS texts stating what was not checked,
tracebacks from SymPy exercises, giveaways before an exercise, and dead links."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from flowlab.cli import main
from flowlab.exercises import EXERCISES
from test_exercises import NB_DIR, _answer_cell, _notebook, _run

BY_NUMBER = {ex.number: ex for ex in EXERCISES}


def _check(number: int, source: str):
    result = _run(BY_NUMBER[number], source)
    assert "Traceback" not in result.message
    return result


def test_a_flip_of_x_instead_of_the_velocity_is_rejected_and_named(one_thread):
    result = _check(4, "def flip(model):\n    return lambda x, t: model(-x, 1 - t)")
    assert result.status == "wrong" and "mirrored the position x" in result.message, result.message


@pytest.mark.parametrize("number,source,arg", [
    (3, "def pred_data_reversed(x, v, t):\n    return x.add_((1 - t[:, None]) * v)", "x"),
    (5, "def shift_reversed(t, shift):\n    u = t.neg_().add_(1)\n    return 1 - shift * u / (1 + (shift - 1) * u)", "t"),
    (9, "def velocity_to_score(x, v, t):\n    tt = t[:, None]\n    x -= tt * v\n"
        "    return -x / ((1 + tt**2) * (1 - tt**2))", "x"),
    (10, "def guided_velocity(x, v, t, delta):\n    v += delta / (1 - t[:, None])\n    return v", "v"),
    (12, "def sample_hunyuan(model, x, n_steps):\n    ts = torch.linspace(0, 1, n_steps + 1, dtype=x.dtype)\n"
         "    for t, t_next in zip(ts[:-1], ts[1:]):\n        x += (t_next - t) * model(x, t.expand(x.shape[0]))\n"
         "    return x", "x"),
])
def test_an_answer_that_overwrites_an_argument_is_rejected(number, source, arg, one_thread):
    result = _check(number, source)
    assert result.status == "wrong", result.message
    assert f"changed its argument `{arg}` in place" in result.message, result.message


@pytest.mark.parametrize("number,source,got,want", [
    (3, "def pred_data_reversed(x, v, t):\n    return (x + (1 - t[:, None]) * v).float()", "float32", "float64"),
    (8, "def velocity_to_noise(x, v, t):\n    tt = t[:, None]\n    return ((x - tt * v) / (1 + tt**2)).float()",
     "float32", "float64"),
    (13, "def hunyuan_time(t):\n    return ((t * 1000).half() / 1000).float()", "float32", "float16"),
    (14, "def hunyuan_embedding(t, dim):\n    half = dim // 2\n"
         "    f = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float64) / half)\n"
         "    a = (1000 * t.double())[:, None] * f\n    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)",
     "float64", "float32"),
])
def test_a_dtype_other_than_the_spec_is_rejected(number, source, got, want, one_thread):
    result = _check(number, source)
    assert result.status == "wrong" and f"returned {got}" in result.message and f"expected {want}" in result.message, \
        result.message


@pytest.mark.parametrize("number,source,must", [
    (5, "def shift_reversed(t, shift):\n    u = 1 - t\n    return (1 - shift * u / (1 + (shift - 1) * u))[..., :-1]",
     "a tensor of the shape of t"),
    (6, "def fixed_schedule(n_calls):\n    return torch.linspace(0, 1, n_calls)", "for n_calls = 4"),
    (13, "def hunyuan_time(t):\n    return ((t * 1000).half() / 1000)[1:]", "the shape of t"),
])
def test_shape_messages_speak_of_the_exercise_own_variables(number, source, must, one_thread):
    result = _check(number, source)
    assert result.status == "wrong" and must in result.message, result.message
    assert "shape of x" not in result.message and "per-sample time" not in result.message


def test_a_loop_with_one_call_too_few_is_told_its_own_count(one_thread):
    result = _check(12, "def sample_hunyuan(model, x, n_steps):\n"
                        "    ts = torch.linspace(0, 1, n_steps, dtype=x.dtype)\n"
                        "    for t, t_next in zip(ts[:-1], ts[1:]):\n"
                        "        x = x + (t_next - t) * model(x, t.expand(x.shape[0]))\n    return x")
    assert result.status == "wrong" and "made 7 model calls for n_steps = 8" in result.message, result.message
    assert "8 calls" not in result.message


def test_the_scheduler_own_last_sigma_is_a_right_data_at(one_thread):
    result = _check(11, "from flowlab.exercises import MysteryScheduler\nsched = MysteryScheduler()\n"
                        "sched.set_timesteps(10)\n"
                        "answers = dict(direction='increasing', data_at=sched.sigmas[-1], wasted_calls=1, shift=2.0)\n"
                        "def mystery_pred_data(x, v, timestep):\n    return x + (1 - timestep[:, None] / 1000) * v")
    assert result.status == "pass", result.message


def test_pass_text_of_exercise_13_counts_the_times_it_checked(one_thread):
    ex = BY_NUMBER[13]
    nb = _notebook(ex.notebook)
    import torch

    seen = []
    ns: dict = {"torch": torch}
    exec(compile(nb.cells[_answer_cell(nb, ex)].source, "answer", "exec"), ns)
    solution = ns["hunyuan_time"]

    def counting(t):
        seen.append(t.numel())
        return solution(t)

    result = ex.check(counting)
    assert result.status == "pass", result.message
    assert f"all {sum(seen)} times" in result.message, (sum(seen), result.message)


def test_pass_text_of_exercise_4_states_no_unverified_formula(one_thread):
    result = _run(BY_NUMBER[4], "def flip(model):\n    return lambda x, t: -model(x, 1 - t)")
    assert result.status == "pass" and "-model(x, 1 - t)" not in result.message


@pytest.mark.parametrize("number,source,solver", [
    (3, "from flowlab import REVERSED\ndef pred_data_reversed(x, v, t):\n    return REVERSED.pred_data(x, v, t)",
     "pred_data"),
    (4, "from flowlab.sampling import flip as f\ndef flip(model):\n    return f(model)", "flowlab.sampling.flip"),
    (5, "from flowlab.schedules import shift_noise_level\n"
        "def shift_reversed(t, shift):\n    return 1 - shift_noise_level(1 - t, shift)", "shift_noise_level"),
    (6, "from flowlab.schedules import hunyuan_corrected\ndef fixed_schedule(n_calls):\n"
        "    return hunyuan_corrected(n_calls)", "hunyuan_corrected"),
    (8, "from flowlab.exercises import EXERCISE_PATH\ndef velocity_to_noise(x, v, t):\n"
        "    return EXERCISE_PATH.pred_noise(x, v, t)", "pred_noise"),
    (9, "from flowlab.exercises import EXERCISE_PATH\ndef velocity_to_score(x, v, t):\n"
        "    return EXERCISE_PATH.score(x, v, t)", "score"),
    (12, "from flowlab.sampling import sample\nfrom flowlab.schedules import hunyuan_corrected\n"
         "def sample_hunyuan(model, x, n_steps):\n"
         "    return sample(model, x, hunyuan_corrected(n_steps, dtype=x.dtype), 'reversed')", "sample"),
    (13, "from flowlab.shape import reference_time\ndef hunyuan_time(t):\n    return reference_time(t, torch.float16)",
     "reference_time"),
    (14, "from flowlab.shape import timestep_embedding\ndef hunyuan_embedding(t, dim):\n"
         "    return timestep_embedding(t, dim)", "timestep_embedding"),
])
def test_calling_flowlab_own_solution_fails_and_says_why(number, source, solver, one_thread):
    result = _check(number, source)
    assert result.status == "wrong", result.message
    assert "which is what this exercise asks you to write" in result.message and solver in result.message, \
        result.message


@pytest.mark.parametrize("number,cell,check_cell", [
    (1, "pred_x0 = update.subs(s_next, 0)\npred_x1 = undefined_name", "check_jumps(pred_x0, pred_x1)"),
    (2, "x_path = t * D + (1 - t) * E\nv_path = sp.diff(x_path, q)\ndata_is = 'pred_x1'",
     "check_which_is_data(x_path, v_path, data_is)"),
])
def test_a_sympy_cell_that_raises_leaves_the_check_without_traceback(number, cell, check_cell):
    """The student's cell stops with an error before assigning every answer; the check cell as the notebook
    has it must still answer in words (no NameError)."""
    ex = BY_NUMBER[number]
    nb = _notebook(ex.notebook)
    checks = [c.source for c in nb.cells if c.cell_type == "code" and c.source.startswith(check_cell)]
    assert checks == [check_cell]
    ns: dict = {}
    exec(compile(nb.cells[[i for i, c in enumerate(nb.cells) if c.cell_type == "code"][0]].source, "setup", "exec"), ns)
    with pytest.raises(NameError):
        exec(compile(cell, "answer", "exec"), ns)
    result = eval(check_cell, ns)
    assert result.status == "not_done" and "fix the error" in result.message, result.message


def test_a_check_answers_in_words_whatever_the_answer_is_made_of():
    import sympy as sp

    result = BY_NUMBER[1].check(sp.Matrix([[1, 2]]), object())
    assert result.status in ("wrong", "error") and "Traceback" not in result.message


# ---- the notebooks: no giveaways, no dead links, the definitions the text uses -----------------------

#: Per exercise: ways its answer could be written down (in the text, in code, in outputs of cells before it).
GIVEAWAYS = {
    1: ["x - s*v", "x - s v", "x + (1 - s)"],
    2: ["(D, data)", "pred_x1 = x + (1 - t)", "jump to t = 1 lands on", "lands on $D$"],
    3: ["x + (1 - t) v", "x + (1 - t)*v", "(1 - t[:, None]) * v", "$= x + (1 - t) v$"],
    4: ["-model(x, 1 - t)", "-\\,v_{\\text{conv}}(x, 1 - t)", "v' = -v"],
    5: ["1 - u_shifted", "1 - shift_noise_level", "t' = 1 - u'"],
    6: ["linspace(0, 1, n_calls + 1)", "linspace(0, 1, N + 1)", "hunyuan_corrected("],
    8: ["(x - t v) / (1 + t^2)", "(x - t*v)/(t**2 + 1)", "(x - tt * v) / (1 + tt**2)"],
    9: ["-E / \\beta", "-E/\\beta", "= -E / beta", "-E / (1 - t^2)"],
    10: ["v + delta / (1 - t)", "\\delta / (1 - t)"],
    12: ["linspace(0, 1, n_steps + 1)"],
    13: ["(t * 1000).to(torch.float16) / 1000", ".half() / 1000", "reference_time("],
}
#: Functions that solve an exercise: never imported by a setup cell.
SOLVERS = ["hunyuan_corrected", "shifted", "uniform", "reference_time", "timestep_embedding", "functional",
           "symbolic as S", "EXERCISE_PATH", "guidance_demo", "import flip", "shift_noise_level"]


def _text_of(cell) -> str:
    out = cell.source
    for o in cell.get("outputs", []):
        out += o.get("text", "") + o.get("data", {}).get("text/plain", "") + o.get("data", {}).get("text/markdown", "")
    return out


@pytest.mark.parametrize("number", sorted(GIVEAWAYS))
def test_nothing_before_an_exercise_states_its_answer(number):
    ex = BY_NUMBER[number]
    nb = _notebook(ex.notebook)
    first_check = {e.check.__name__ for e in EXERCISES}
    for i in range(_answer_cell(nb, ex)):
        cell = nb.cells[i]
        if "solution" in cell.metadata.get("tags", []):
            continue  # the answers of the earlier exercises are the student's own by then
        is_check = cell.cell_type == "code" and cell.source.split("(")[0] in first_check
        text = cell.source if is_check else _text_of(cell)  # a check's PASS repeats the student's own answer
        for form in GIVEAWAYS[number]:
            assert form not in text, f"exercise {number}: cell {i} states {form!r} before the exercise"


@pytest.mark.parametrize("name", sorted(p.name for p in NB_DIR.glob("EX_*.ipynb")))
def test_setup_cells_import_no_solving_function_and_links_resolve(name):
    nb = _notebook(name)
    setup = next(c for c in nb.cells if c.cell_type == "code").source
    for solver in SOLVERS:
        assert solver not in setup, f"{name}: the setup cell imports {solver}"
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        assert "conventions.md" not in cell.source and "trap 4" not in cell.source
        for target in re.findall(r"\]\(([^)#\s]+)", cell.source):
            if "://" not in target:
                assert (NB_DIR / target).exists(), f"{name}: dead link {target}"
    assert "[NOTATION.md](../NOTATION.md)" in nb.cells[0].source


def test_paths_exercises_define_alpha_beta_and_the_marginal_score_step():
    nb = _notebook("EX_03_paths_and_guidance.ipynb")
    intro8 = next(c.source for c in nb.cells if c.source.startswith("## Exercise 8"))
    intro9 = next(c.source for c in nb.cells if c.source.startswith("## Exercise 9"))
    assert "\\alpha(t) = t" in intro8 and "\\beta(t) = 1 - t^2" in intro8
    assert "\\nabla_x \\log p_t(x \\mid D)" in intro9 and "\\mathbb{E}\\big[\\nabla_x \\log p_t(x \\mid D)" in intro9


def test_the_handout_brings_notation_and_links_to_it(tmp_path, capsys):
    out = tmp_path / "handout"
    assert main(["exercises", "--out", str(out)]) == 0
    assert (out / "NOTATION.md").read_text() == (NB_DIR.parent / "NOTATION.md").read_text()
    for path in out.glob("EX_*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        assert "[NOTATION.md](NOTATION.md)" in nb.cells[0].source
        for cell in nb.cells:
            for target in re.findall(r"\]\(([^)#\s]+)", cell.source) if cell.cell_type == "markdown" else []:
                assert "://" in target or (out / target).exists(), f"{path.name}: dead link {target}"


def test_a_source_folder_linking_a_missing_notation_is_refused(tmp_path, capsys):
    src = tmp_path / "solved"
    src.mkdir()
    for path in NB_DIR.glob("EX_*.ipynb"):
        (src / path.name).write_text(path.read_text())
    assert main(["exercises", "--out", str(tmp_path / "out"), "--source", str(src)]) == 1
    assert "link to NOTATION.md" in capsys.readouterr().err and not (tmp_path / "out").exists()
    (src / "NOTATION.md").write_text("# Notation\n")
    assert main(["exercises", "--out", str(tmp_path / "out"), "--source", str(src)]) == 0
    assert (tmp_path / "out" / "NOTATION.md").read_text() == "# Notation\n"


def test_an_undefined_name_is_explained_without_promising_imports_the_setup_lacks(one_thread):
    result = _check(8, "def velocity_to_noise(x, v, t):\n    return sp.simplify(x)")
    assert result.status == "error" and "NameError" in result.message and "import sympy as sp" in result.message
    assert "it imports torch, sympy and flowlab" not in result.message
