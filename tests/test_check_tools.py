"""`flowlab check FILE.py:FUNCTION` (exit 0 / 1 / 2, JSON, loads only the named file, calls only the named
function) and the pytest plugin (check_* fixtures, --flowlab-claims beside nbval, junit XML)."""
from __future__ import annotations

import importlib.metadata
import json
import textwrap
import xml.etree.ElementTree as ET

import nbformat
import pytest

from flowlab.cli import main

pytest_plugins = ["pytester"]

PORT = textwrap.dedent('''
    import torch
    from pathlib import Path

    def right(model, x, steps):
        ts = torch.linspace(0, 1, steps + 1)
        for t, t_next in zip(ts[:-1], ts[1:]):
            x = x + (t_next - t) * model(x, t)
        return x

    def hy3dgen_like(model, x, steps):
        ts = torch.cat([torch.linspace(0, 1, steps), torch.ones(1)])
        for t, t_next in zip(ts[:-1], ts[1:]):
            x = x + (t_next - t) * model(x, t)
        return x

    def pred_x0(x, v, t):
        return x - t * v

    def not_called(model, x, steps):
        Path(__file__).with_name("CALLED").write_text("yes")
        raise RuntimeError("flowlab must not call this")

    def crashes(model, x, steps):
        return 1 / 0

    def misuses(model, x, steps):
        return model(x)
''')


@pytest.fixture
def port(tmp_path):
    (tmp_path / "port.py").write_text(PORT)
    (tmp_path / "sibling.py").write_text("raise RuntimeError('flowlab imported a file it was not given')\n")
    return tmp_path / "port.py"


def _run(capsys, *argv):
    code = main(["check", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_right_loop_exits_0(port, capsys):
    code, out, _ = _run(capsys, f"{port}:right", "--convention", "reversed")
    assert code == 0 and "PASS" in out
    assert not (port.parent / "CALLED").exists()


def test_findings_exit_1_with_json(port, capsys):
    code, out, _ = _run(capsys, f"{port}:hy3dgen_like", "--convention", "reversed", "--json")
    assert code == 1
    report = json.loads(out)
    assert [f["code"] for f in report["findings"]] == ["wasted_last_step"]
    assert report["findings"][0]["evidence"]["effective_steps"] == 49


def test_prediction_mode(port, capsys):
    assert _run(capsys, f"{port}:pred_x0", "--convention", "conventional", "--prediction", "data")[0] == 0
    code, out, _ = _run(capsys, f"{port}:pred_x0", "--convention", "reversed", "--prediction", "data")
    assert code == 1 and "noise_as_data" in out


@pytest.mark.parametrize("target, extra, words", [
    ("{port}:missing", [], "no function 'missing'"),
    ("{dir}/nofile.py:right", [], "not a Python file"),
    ("{port}", [], "FILE.py:FUNCTION"),
    ("{port}:crashes", [], "raised ZeroDivisionError"),
    ("{port}:misuses", [], "called as model(x, t)"),
])
def test_bad_usage_exits_2(port, capsys, target, extra, words):
    code, _, err = _run(capsys, target.format(port=port, dir=port.parent), "--convention", "reversed", *extra)
    assert code == 2 and words in err
    assert not (port.parent / "CALLED").exists()


def test_missing_convention_is_a_usage_error(port, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check", f"{port}:right"])
    assert exc.value.code == 2


# ---- the pytest plugin ----------------------------------------------------------------------------------------

def _plugin_args() -> list[str]:
    """`-p flowlab.testing.plugin` unless the installed distribution already registers it (pytest11)."""
    eps = importlib.metadata.entry_points(group="pytest11")
    return [] if any(ep.value == "flowlab.testing.plugin" for ep in eps) else ["-p", "flowlab.testing.plugin"]


def test_fixtures_fail_a_test_with_the_findings(pytester):
    pytester.makepyfile(test_port=PORT + textwrap.dedent('''
        def test_right(check_sampler):
            assert check_sampler(right, "reversed").ok

        def test_wasted(check_sampler):
            check_sampler(hy3dgen_like, "reversed")

        def test_wasted_allowed(check_sampler):
            assert check_sampler(hy3dgen_like, "reversed", allow=["wasted_last_step"]).codes == ("wasted_last_step",)

        def test_prediction(check_prediction):
            check_prediction(pred_x0, "reversed", "data")
    '''))
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*[[]wasted_last_step[]] 1 model call(s) moved nothing*49 effective steps of 50*",
                                 "*[[]noise_as_data[]]*"])


def _claims_notebook(path):
    """Two passing claims, a failing one, then a cell that never runs; outputs stored for nbval."""
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell
    cells = [code("from flowlab.claims import claim, claim_exact"),
             code("claim('one plus one is two (abs error)', abs(1 + 1 - 2), 1e-12)"),
             code("claim_exact('three is odd', 3 % 2 == 1)")]
    for i, cell in enumerate(cells):
        cell.execution_count = i + 1
    cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout",
                                               text="PASS  one plus one is two (abs error)  (error <= 1e-12)\n")]
    cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="PASS  three is odd  (exact)\n")]
    good = nbformat.v4.new_notebook(cells=cells)
    nbformat.write(good, str(path / "good.ipynb"))
    nb.cells = cells[:1] + [code("claim('pi is three (abs error)', abs(3.14159 - 3), 1e-3)"), code("print('never')")]
    nbformat.write(nb, str(path / "bad.ipynb"))


def test_claims_become_test_items_beside_nbval(pytester):
    _claims_notebook(pytester.path)
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider", "--nbval", "good.ipynb",
                                           "--flowlab-claims", "good.ipynb", "bad.ipynb", "--junitxml=report.xml")
    # nbval: the 3 cells of good.ipynb pass (bad.ipynb is not an nbval argument); claims: 2 + "runs to the end"
    # pass in good.ipynb, the failed claim and the run item fail in bad.ipynb
    result.assert_outcomes(passed=6, failed=2)
    names = {case.get("name") for case in ET.parse(pytester.path / "report.xml").iter("testcase")}
    assert {"one plus one is two (abs error)", "three is odd", "pi is three (abs error)",
            "notebook runs to the end"} <= names
    result.stdout.fnmatch_lines(["*claim failed: pi is three (abs error): measured 1.416e-01, tolerance 1e-03*"])


# ---- bad inputs to the checks: a clear FlowlabError, never a traceback from deep inside ---------------------

import torch  # noqa: E402

from flowlab.errors import FlowlabError  # noqa: E402
from flowlab.testing import check_prediction, check_sampler  # noqa: E402


def _euler(model, x, steps):
    ts = torch.linspace(0.0, 1.0, steps + 1)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, t)
    return x


@pytest.mark.parametrize("kwargs, words", [
    ({"convention": "sideways"}, "unknown convention"),
    ({"convention": "vp_cosine"}, "straight conventions"),
    ({"signature": "keras"}, "signature must be one of"),
    ({"time_scale": 0}, "time_scale must be a positive number"),
    ({"dim": 4}, "dim must be 2 or 3"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"shift": -1.0}, "shift must be None"),
    ({"dtype": torch.int32}, "dtype must be one of"),
])
def test_check_sampler_refuses_bad_arguments(kwargs, words):
    with pytest.raises(FlowlabError, match=words):
        check_sampler(_euler, **{"convention": "reversed", **kwargs})


def test_check_sampler_says_when_the_loop_itself_fails():
    with pytest.raises(FlowlabError, match="raised ZeroDivisionError"):
        check_sampler(lambda model, x, steps: 1 / 0, "reversed")
    with pytest.raises(FlowlabError, match="called like a diffusers transformer"):
        check_sampler(_euler, "reversed", signature="diffusers")
    with pytest.raises(FlowlabError, match="fn must be the sampling loop"):
        check_sampler("not a function", "reversed")


def test_in_place_update_of_the_callers_noise_is_a_finding():
    def in_place(model, x, steps):
        ts = torch.linspace(0.0, 1.0, steps + 1)
        for t, t_next in zip(ts[:-1], ts[1:]):
            x += (t_next - t) * model(x, t)
        return x

    assert check_sampler(in_place, "reversed").codes == ("mutates_input",)
    assert check_sampler(_euler, "reversed").ok


def test_bad_output_is_a_finding():
    assert check_sampler(lambda m, x, s: _euler(m, x, s)[:, :1], "reversed").codes == ("bad_output",)
    assert check_sampler(lambda m, x, s: _euler(m, x, s).double(), "reversed").codes == ("bad_output",)
    assert check_sampler(lambda m, x, s: _euler(m, x, s).tolist(), "reversed").codes == ("bad_output",)


@pytest.mark.parametrize("kwargs, words", [
    ({"kind": "score"}, "kind must be 'data'"),
    ({"t_form": "matrix"}, "t_form must be one of"),
    ({"time_scale": -3}, "time_scale must be a positive number"),
])
def test_check_prediction_refuses_bad_arguments(kwargs, words):
    with pytest.raises(FlowlabError, match=words):
        check_prediction(lambda x, v, t: x - t * v, "conventional", **kwargs)


def test_check_scheduler_fixture_fails_a_wrong_expectation(pytester):
    pytester.makepyfile(test_s=textwrap.dedent('''
        from diffusers import FlowMatchEulerDiscreteScheduler

        def test_right(check_scheduler):
            check_scheduler(FlowMatchEulerDiscreteScheduler(shift=3.0), expect={"direction": "decreasing", "shift": 3.0})

        def test_wrong_direction_expected(check_scheduler):
            check_scheduler(FlowMatchEulerDiscreteScheduler(), expect={"direction": "increasing"})
    '''))
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider", "-W", "ignore")
    result.assert_outcomes(passed=1, failed=1)
