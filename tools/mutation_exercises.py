"""Mutation testing of the exercise checks: can a wrong answer pass?

For every exercise this takes the official solution (the ``solution`` cell of the solved notebook),
generates mutants of it by rewriting its syntax tree (operator and sign swaps, t <-> 1 - t, sigma / s <-> t,
x <-> v, constants changed, off-by-one slices and counts, in-place variants, dtype casts, dropped terms,
swapped list items, dropped statements), and runs each through the exercise's check. Whether a mutant
computes something different is decided WITHOUT the check: an oracle calls the mutant and the solution on
many random inputs of its own (other shapes, dtypes and times than the check uses) and compares outputs,
dtypes, side effects on the arguments and model calls. Every non-equivalent mutant must be rejected by the
check; the known wrong answers (tests/exercise_answers.py ``WRONG``) must be rejected and the correct
answers in other forms (``RIGHT``) must pass.

    python tools/mutation_exercises.py                 # all exercises, the score table
    python tools/mutation_exercises.py -e 3 -e 6 -v    # some exercises, list every surviving mutant

Exit status 1 when a non-equivalent mutant survives, a known mistake passes or a right variant fails.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import io
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import nbformat  # noqa: E402
import sympy as sp  # noqa: E402
import torch  # noqa: E402

from flowlab.exercises import EXERCISES  # noqa: E402
from flowlab.exercises.student import SOLUTION_TAG  # noqa: E402

NB_DIR = ROOT / "notebooks" / "exercises"

# ---- the official solution and the setup namespace, from the solved notebook -----------------------------


def _notebook(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NB_DIR / name, as_version=4)


def solution_source(ex) -> str:
    """The solution cell of ``ex``: the tagged cell right before its check call."""
    nb = _notebook(ex.notebook)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for a, b in zip(code, code[1:]):
        if SOLUTION_TAG in a.metadata.get("tags", []) and b.source.lstrip().startswith(ex.check.__name__ + "("):
            return a.source
    raise SystemExit(f"no solution cell before {ex.check.__name__}(...) in {ex.notebook}")


def setup_namespace(ex) -> dict:
    """The notebook's first code cell (its setup) executed in a fresh namespace."""
    nb = _notebook(ex.notebook)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    ns: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(setup.source, f"{ex.notebook}:setup", "exec"), ns)
    return ns


def run_answer(ex, source: str, setup: dict) -> tuple[dict, str | None]:
    """Execute an answer cell as a student would (after the setup); returns the namespace and the error the
    cell raised, if any (then the answers keep what the setup gave them)."""
    ns = dict(setup)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(source, f"EX{ex.number}:answer", "exec"), ns)
    except Exception as exc:  # a broken answer cell is a student's experience too
        return ns, type(exc).__name__
    return ns, None


def answers_of(ex, ns: dict) -> list:
    return [ns.get(name, ...) for name in ex.answers]


def run_check(ex, ns: dict):
    return ex.check(*answers_of(ex, ns))


# ---- mutants -------------------------------------------------------------------------------------------

_SWAP_OPS = {ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Div, ast.Add], ast.Div: [ast.Mult, ast.FloorDiv],
             ast.Pow: [ast.Mult], ast.FloorDiv: [ast.Div]}
_INPLACE = {ast.Add: "add_", ast.Sub: "sub_", ast.Mult: "mul_", ast.Div: "div_"}
_ATTR_SWAPS = {"float16": ["float32", "bfloat16"], "float32": ["float64", "float16"], "float64": ["float32"],
               "half": ["float", "bfloat16"], "float": ["double", "half"], "double": ["float"], "cos": ["sin"],
               "sin": ["cos"], "exp": ["log"], "log": ["exp"], "linspace": ["arange"], "ones": ["zeros"],
               "zeros": ["ones"], "REVERSED": ["CONVENTIONAL"], "expand": ["repeat"]}
_STRING_SWAPS = {"increasing": ["decreasing"], "decreasing": ["increasing"], "pred_x1": ["pred_x0"],
                 "pred_x0": ["pred_x1"]}
_TIME_NAMES = {"t", "tt", "s", "sigma", "u", "t_next", "timestep", "ts"}


def _names_in(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _alternatives(node: ast.AST, names: set[str]) -> Iterator[tuple[str, ast.AST | None]]:
    """(description, replacement) pairs for one node; a replacement None deletes a statement."""
    if isinstance(node, ast.BinOp):
        for op in _SWAP_OPS.get(type(node.op), []):
            yield f"{type(node.op).__name__} -> {op.__name__}", ast.BinOp(node.left, op(), node.right)
        yield "drop right operand", node.left
        yield "drop left operand", node.right
        if not isinstance(node.op, (ast.Add, ast.Mult)):
            yield "swap operands", ast.BinOp(node.right, node.op, node.left)
        if type(node.op) in _INPLACE and isinstance(node.left, ast.Name):
            yield "in-place method", ast.Call(ast.Attribute(ast.Name(node.left.id, ast.Load()), _INPLACE[type(node.op)],
                                                            ast.Load()), [node.right], [])
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        yield "drop minus", node.operand
    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        if node.id in _TIME_NAMES:
            yield f"{node.id} -> 1 - {node.id}", ast.BinOp(ast.Constant(1), ast.Sub(), node)
            for other in sorted((_TIME_NAMES & names) - {node.id}):
                yield f"{node.id} -> {other}", ast.Name(other, ast.Load())
        pairs = {"x": "v", "v": "x", "D": "E", "E": "D", "x_path": "v_path"}
        if node.id in pairs and pairs[node.id] in names:
            yield f"{node.id} -> {pairs[node.id]}", ast.Name(pairs[node.id], ast.Load())
        if node.id in names and node.id not in ("torch", "sp", "math", "model", "S", "F"):
            yield f"negate {node.id}", ast.UnaryOp(ast.USub(), node)
    elif isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            yield "flip bool", ast.Constant(not value)
        elif isinstance(value, (int, float)):
            seen = {value}
            for new in (value + 1, value - 1, -value, 2 * value, 10 * value, 0):
                new = type(value)(new)
                if new not in seen:
                    seen.add(new)
                    yield f"constant {value!r} -> {new!r}", ast.Constant(new)
        elif isinstance(value, str):
            for new in _STRING_SWAPS.get(value, []):
                yield f"{value!r} -> {new!r}", ast.Constant(new)
    elif isinstance(node, ast.Attribute) and node.attr in _ATTR_SWAPS:
        for new in _ATTR_SWAPS[node.attr]:
            yield f".{node.attr} -> .{new}", ast.Attribute(node.value, new, node.ctx)
    elif isinstance(node, ast.Subscript):
        yield "drop subscript", node.value
        sl = node.slice
        if isinstance(sl, ast.Slice):
            for part in ("lower", "upper"):
                bound = getattr(sl, part)
                for delta in (1, -1):
                    new = copy.deepcopy(sl)
                    setattr(new, part, ast.BinOp(bound, ast.Add(), ast.Constant(delta)) if bound is not None
                            else ast.Constant(delta if part == "lower" else -delta))
                    yield f"slice {part} {delta:+d}", ast.Subscript(node.value, new, node.ctx)
        if isinstance(sl, ast.Tuple) and len(sl.elts) == 2:
            yield "swap index axes", ast.Subscript(node.value, ast.Tuple(sl.elts[::-1], ast.Load()), node.ctx)
    elif isinstance(node, (ast.List, ast.Tuple)) and isinstance(node.ctx, ast.Load) and len(node.elts) > 1:
        yield "reverse items", type(node)(node.elts[::-1], node.ctx)
    elif isinstance(node, ast.Call):
        for i in range(len(node.args)):
            for j in range(i + 1, len(node.args)):
                args = list(node.args)
                args[i], args[j] = args[j], args[i]
                yield f"swap arguments {i} and {j}", ast.Call(node.func, args, node.keywords)
        if node.keywords:
            for k, kw in enumerate(node.keywords):
                yield f"drop keyword {kw.arg}", ast.Call(node.func, node.args, node.keywords[:k] + node.keywords[k + 1:])
    elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
            and isinstance(node.value, ast.BinOp) and isinstance(node.value.left, ast.Name) \
            and node.value.left.id == node.targets[0].id:
        yield "in-place augmented assignment", ast.AugAssign(ast.Name(node.targets[0].id, ast.Store()), node.value.op,
                                                             node.value.right)
    if isinstance(node, ast.Return) and node.value is not None:
        for cast in ("float", "double", "half"):
            yield f"return .{cast}()", ast.Return(ast.Call(ast.Attribute(node.value, cast, ast.Load()), [], []))
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.Expr)):
        yield "drop statement", None


def _positions(tree: ast.AST) -> list[tuple[ast.AST, str, int | None]]:
    """Every (parent, field, index) slot holding a node, in a fixed order."""
    out = []
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if isinstance(value, ast.AST):
                out.append((parent, name, None))
            elif isinstance(value, list):
                out += [(parent, name, i) for i, item in enumerate(value) if isinstance(item, ast.AST)]
    return out


def mutants(source: str) -> list[tuple[str, str]]:
    """(description, source) of every mutant of ``source``, deduplicated, without the original."""
    tree = ast.parse(source)
    names = _names_in(tree)
    original = ast.unparse(tree)
    seen, out = {original}, []
    for k, (parent, name, idx) in enumerate(_positions(tree)):
        node = getattr(parent, name) if idx is None else getattr(parent, name)[idx]
        for desc, repl in list(_alternatives(node, names)):
            new_tree = copy.deepcopy(tree)
            p, f, i = _positions(new_tree)[k]
            if repl is None:
                body = getattr(p, f)
                if i is None or len(body) < 2:
                    continue
                setattr(p, f, body[:i] + body[i + 1:])
            elif i is None:
                setattr(p, f, copy.deepcopy(repl))
            else:
                getattr(p, f)[i] = copy.deepcopy(repl)
            try:
                text = ast.unparse(ast.fix_missing_locations(new_tree))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    compile(text, "mutant", "exec")
            except (SyntaxError, ValueError, TypeError, AttributeError):
                continue
            if text not in seen:
                seen.add(text)
                out.append((f"{desc} @ line {getattr(node, 'lineno', '?')}", text))
    return out


# ---- the oracle: does a mutant compute something different? ----------------------------------------------

def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(9000 + seed)


def _rand_xvt(k: int, extra: int = 0) -> tuple:
    g = _gen(k)
    b, d = int(torch.randint(1, 9, (1,), generator=g)), int(torch.randint(1, 6, (1,), generator=g))
    dtype = (torch.float64, torch.float32)[k % 2]
    x, v = (torch.randn(b, d, generator=g, dtype=torch.float64).to(dtype) for _ in range(2))
    t = (0.03 + 0.94 * torch.rand(b, generator=g, dtype=torch.float64)).to(dtype)
    more = tuple(torch.randn(b, d, generator=g, dtype=torch.float64).to(dtype) for _ in range(extra))
    return (x, v, t, *more)


class _Model:
    """A nonlinear velocity model with no symmetry, counting its calls and recording the times it saw."""

    def __init__(self, seed: int, dim: int) -> None:
        g = _gen(500 + seed)
        self.a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
        self.b = torch.randn(dim, generator=g, dtype=torch.float64)
        self.calls, self.times = 0, []

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.times.append(t.detach().clone() if isinstance(t, torch.Tensor) else t)
        tt = t[:, None] if isinstance(t, torch.Tensor) and t.ndim == 1 else t
        return (torch.sin(x @ self.a.to(x.dtype) + 3 * tt) * (1 + tt) + tt**2 * self.b.to(x.dtype)).to(x.dtype)


def _inputs(number: int) -> list[Callable[[], tuple]]:
    """Makers of fresh argument tuples for the oracle (each call builds new tensors)."""
    k = range(24)
    if number in (3, 8, 9):
        return [lambda i=i: _rand_xvt(i) for i in k]
    if number == 10:
        return [lambda i=i: _rand_xvt(i, extra=1) for i in k]
    if number == 4:
        def make4(i: int) -> tuple:
            x, _, t = _rand_xvt(i)
            return (_Model(i, x.shape[1]), x, t)
        return [lambda i=i: make4(i) for i in k]
    if number == 5:
        def make(i: int) -> tuple:
            x, _, t = _rand_xvt(i)
            return (t if i % 3 else x.abs().clamp(0.01, 0.99), float(0.2 + 4.8 * torch.rand(1, generator=_gen(i))))
        return [lambda i=i: make(i) for i in k]
    if number == 6:
        return [lambda n=n: (n,) for n in range(1, 13)]
    if number == 7:
        from flowlab.conventions import REVERSED
        from flowlab.gmm import eight_gaussians_gmm
        from flowlab.schedules import hunyuan_compat, hunyuan_corrected

        gmm = eight_gaussians_gmm()

        def make7(i: int) -> tuple:
            sched = (hunyuan_compat, hunyuan_corrected)[i % 2](2 + i % 5, dtype=torch.float64)
            return (sched, gmm.velocity_model(REVERSED), torch.randn(300, 2, generator=_gen(i), dtype=torch.float64),
                    torch.randn(300, 2, generator=_gen(i + 50), dtype=torch.float64) + 1)
        return [lambda i=i: make7(i) for i in range(8)]
    if number == 11:
        return [lambda i=i: (lambda x, v, t: (x, v, 1000 * t))(*_rand_xvt(i)) for i in k]
    if number == 12:
        def make12(i: int) -> tuple:
            x = _rand_xvt(i)[0]
            return (_Model(i, x.shape[1]), x, 1 + i % 6)
        return [lambda i=i: make12(i) for i in k]
    if number == 13:
        return [lambda i=i: (torch.rand(1 + i, generator=_gen(i)),) for i in k]
    if number == 14:
        return [lambda i=i: (torch.rand(1 + i % 7, generator=_gen(i)), 2 * (1 + i % 16)) for i in k]
    return []


#: float32 tolerance of the oracle per exercise where the computation itself loses more (exercise 14: sines of
#: arguments up to 1000 rad in float32, which correct forms round differently by up to ~1e-4).
_F32_TOL = {14: 1e-3}
_oracle_f32 = [1e-5]


def _tol(dtype: torch.dtype) -> float:
    return {torch.float64: 1e-10, torch.float32: _oracle_f32[0]}.get(dtype, 0.0)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
            return False
        if not a.is_floating_point():
            return bool(torch.equal(a, b))
        a64, b64 = a.detach().double(), b.detach().double()
        if not bool(torch.equal(torch.isfinite(a64), torch.isfinite(b64))):
            return False
        fin = torch.isfinite(a64)
        return bool(((a64 - b64).abs()[fin] <= _tol(a.dtype) * (1 + b64.abs()[fin])).all()) and bool(
            torch.equal(a64[~fin], b64[~fin]))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, sp.Basic) or isinstance(b, sp.Basic):
        try:  # symbols by name (assumptions do not change a formula); strings read as formulas
            return sp.simplify(sp.sympify(str(a)) - sp.sympify(str(b))) == 0
        except (sp.SympifyError, TypeError):
            return False
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def _observe_call(fn: Callable, args: tuple) -> tuple:
    """What a caller can see of ``fn(*args)``: the output (or the exception's type), the arguments after the call,
    and for models their calls and the times they saw."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            out = fn(*args)
    except Exception as exc:
        out = ("raised", type(exc).__name__)
    if callable(out) and not isinstance(out, torch.Tensor):
        out = ("callable",)
    seen = [(a.calls, a.times) if isinstance(a, _Model) else a if isinstance(a, (torch.Tensor, int, float, str))
            else type(a).__name__ for a in args]
    return out, seen


def _card_answers(answers: object) -> object:
    """Exercise 11's answers as what they mean: numbers as floats (a 0-d tensor, an int and a float are the same
    answer), the shift rounded to the 0.1 a card states it with."""
    if not isinstance(answers, dict):
        return ("not a dict", repr(answers))
    out = {}
    for key, value in answers.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = round(float(value), 1) if key == "shift" else float(value)
        out[key] = value
    return out


def observe(ex, ns: dict, exec_error: str | None) -> list:
    """Everything the oracle compares for one executed answer cell."""
    if exec_error:
        return [("cell raised", exec_error)]
    values = answers_of(ex, ns)
    n = ex.number
    if n in (1, 2):
        return values
    obs: list = []
    if n == 11:
        obs.append(_card_answers(values[0]))
        values = values[1:]
    fn = values[0]
    if not callable(fn):
        return obs + [("not callable", repr(fn))]
    for make in _inputs(n):
        args = make()
        if n == 4:
            model, x, t = args
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    flipped = fn(model)
            except Exception as exc:
                obs.append(("raised", type(exc).__name__))
                continue
            obs.append(_observe_call(flipped, (x, t)) if callable(flipped) else ("not callable",))
            obs.append((model.calls, model.times))
        else:
            obs.append(_observe_call(fn, args))
    return obs


def equivalent(ex, ref_obs: list, ns: dict, exec_error: str | None) -> bool:
    return _same(observe(ex, ns, exec_error), ref_obs)


# ---- the run -------------------------------------------------------------------------------------------

@dataclass
class Score:
    number: int
    mutants: int = 0
    equivalent: int = 0
    killed: int = 0
    survivors: list = field(default_factory=list)
    known: int = 0
    known_rejected: int = 0
    known_failures: list = field(default_factory=list)
    right: int = 0
    right_passed: int = 0
    right_failures: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score(self) -> float:
        live = self.mutants - self.equivalent
        return 100.0 * self.killed / live if live else 100.0

    @property
    def ok(self) -> bool:
        return not self.survivors and not self.known_failures and not self.right_failures


def score_exercise(ex, *, limit: int | None = None) -> Score:
    from exercise_answers import RIGHT, WRONG

    start = time.perf_counter()
    torch.set_num_threads(1)
    setup = setup_namespace(ex)
    source = solution_source(ex)
    ref_ns, err = run_answer(ex, source, setup)
    assert err is None, f"exercise {ex.number}: the solution cell raised {err}"
    _oracle_f32[0] = _F32_TOL.get(ex.number, 1e-5)
    ref_obs = observe(ex, ref_ns, None)
    out = Score(ex.number)
    for desc, text in mutants(source)[:limit]:
        ns, err = run_answer(ex, text, setup)
        out.mutants += 1
        if equivalent(ex, ref_obs, ns, err):
            out.equivalent += 1
            continue
        result = run_check(ex, ns)
        if result.passed:
            out.survivors.append((desc, text, result.message))
        else:
            out.killed += 1
    for text, _status, _hint in WRONG[ex.number]:
        ns, err = run_answer(ex, text, setup)
        out.known += 1
        result = run_check(ex, ns)
        if equivalent(ex, ref_obs, ns, err) and "which is what this exercise asks you to write" not in result.message:
            # the one known mistake that computes the right values: calling flowlab's own solution
            out.known_failures.append((text, "the oracle finds this known mistake equivalent to the solution"))
        elif result.passed:
            out.known_failures.append((text, "the check passes it"))
        else:
            out.known_rejected += 1
    for text in RIGHT[ex.number]:
        ns, err = run_answer(ex, text, setup)
        out.right += 1
        result = run_check(ex, ns)
        if not result.passed:
            out.right_failures.append((text, result.message))
        elif not equivalent(ex, ref_obs, ns, err):
            out.right_failures.append((text, "passes the check, but the oracle finds it differs from the solution"))
        else:
            out.right_passed += 1
    out.seconds = time.perf_counter() - start
    return out


def table(scores: list[Score]) -> str:
    lines = ["exercise  mutants  equivalent  killed  survived  score    known mistakes  right variants  seconds"]
    for s in scores:
        lines.append(f"{s.number:8d}  {s.mutants:7d}  {s.equivalent:10d}  {s.killed:6d}  {len(s.survivors):8d}  "
                     f"{s.score:5.1f}%  {s.known_rejected:7d}/{s.known:<6d}  {s.right_passed:7d}/{s.right:<6d}  "
                     f"{s.seconds:7.1f}")
    live = sum(s.mutants - s.equivalent for s in scores)
    killed = sum(s.killed for s in scores)
    lines.append(f"all       {sum(s.mutants for s in scores):7d}  {sum(s.equivalent for s in scores):10d}  "
                 f"{killed:6d}  {live - killed:8d}  {100.0 * killed / max(live, 1):5.1f}%  "
                 f"{sum(s.known_rejected for s in scores):7d}/{sum(s.known for s in scores):<6d}  "
                 f"{sum(s.right_passed for s in scores):7d}/{sum(s.right for s in scores):<6d}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-e", "--exercise", type=int, action="append", help="exercise number (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many mutants per exercise")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every surviving mutant")
    args = parser.parse_args(argv)
    chosen = [ex for ex in EXERCISES if not args.exercise or ex.number in args.exercise]
    scores = []
    for ex in chosen:
        s = score_exercise(ex, limit=args.limit)
        scores.append(s)
        if args.verbose or not s.ok:
            for desc, text, msg in s.survivors:
                print(f"[ex {ex.number}] SURVIVED ({desc}):\n{text}\n  check said: {msg[:300]}\n")
            for text, why in s.known_failures + s.right_failures:
                print(f"[ex {ex.number}] {why[:300]}:\n{text}\n")
    print(table(scores))
    return 0 if all(s.ok for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
