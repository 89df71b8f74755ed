"""The CLI fault table: for every command, bad inputs a new user can type, and what they must see.

A case is ``Case(id, argv, expect, rc=1)``: ``argv`` may name the fixture files as ``{model}``,
``{cond}``, ... (see conftest.files) and an output file as ``{out.EXT}``; that file is created with
known content before the run and must be unchanged after it (a failed run never damages an existing
output). ``expect`` are substrings that must appear in stderr after ``flowlab COMMAND: error:``.
Status 1 is a user error with flowlab's message, 2 a bad flag (argparse); stderr never holds a traceback.

A new command adds its cases under its NAME; test_every_command_has_fault_cases fails until it does
(or until it is listed in EXEMPT with the place its faults are tested).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    expect: tuple[str, ...]
    rc: int = 1


def case(id: str, argv: str, *expect: str, rc: int = 1) -> Case:
    return Case(id, tuple(argv.split()), expect, rc)


SHAPE = "shape --model {model} --embedding {cond} --steps 2 --octree 8 --quiet --device cpu"
TOY = "--dist eight_gaussians --device cpu"

CASES: dict[str, list[Case]] = {
    "sample": [
        case("top-seed-device-meta", f"sample {TOY} --n 10 --seed 18446744073709551615 --device meta",
             "a 'meta' device is not supported"),
        case("work-beyond-the-limit", "sample --dist eight_gaussians --device cpu --n 1000000 --steps 100000 "
             "--out {out.npz}", "would take about", "pass --yes to run it anyway"),
        case("n-too-large", f"sample {TOY} --n 1000000000000 --out {{out.npz}}",
             "--n 1000000000000 samples needs about", "more than the", "use a smaller --n"),
        case("steps-too-many", f"sample {TOY} --steps 1000000000000", "--steps 1000000000000 is more than the limit of 100,000"),
        case("seed-beyond-64-bits", f"sample {TOY} --seed 99999999999999999999999",
             "--seed 99999999999999999999999 does not fit a 64-bit generator seed"),
        case("negative-shift-keeps-out", f"sample {TOY} --n 10 --steps 2 --shift -1 --out {{out.npz}}",
             "--shift must be > 0"),
        case("out-is-a-folder", f"sample {TOY} --n 10 --out {{folder}}", "is a directory; give a file name"),
    ],
    "compare": [
        case("n-too-large", f"compare {TOY} --n 1000000000000", "--n 1000000000000 samples needs about"),
        case("steps-too-many", f"compare {TOY} --steps 100000000", "is more than the limit of 100,000"),
        case("seed-beyond-64-bits", f"compare {TOY} --seed -99999999999999999999999", "does not fit a 64-bit"),
        case("n-not-an-integer", f"compare {TOY} --n 1e12", "invalid int value", rc=2),
    ],
    "inspect": [
        case("negative-shift", "inspect diffusers.FlowMatchEulerDiscreteScheduler --shift -3",
             "--shift -3 makes no schedule", "finite s > 0"),
        case("non-monotone-sigmas", "inspect diffusers.FlowMatchEulerDiscreteScheduler --sigmas 0.2,0.9,0.5",
             "--sigmas '0.2,0.9,0.5' is not monotone"),
        case("steps-too-many", "inspect diffusers.FlowMatchEulerDiscreteScheduler --steps 100000000",
             "--steps 100000000 is more than the limit of 10,000"),
        case("nan-mu", "inspect diffusers.FlowMatchEulerDiscreteScheduler --mu nan", "--mu nan is not a finite number"),
    ],
    "derive": [
        case("unknown-convention", "derive --convention sideways", "invalid choice", rc=2),
    ],
    "shape": [
        case("octree-too-large", f"{SHAPE} --octree 100000 --out {{out.glb}}",
             "--octree 100000 (100001^3 = 1e+15 grid points) needs about", "use a smaller --octree"),
        case("steps-too-many", f"{SHAPE} --steps 1000000000000", "--steps 1000000000000 is more than the limit"),
        case("seed-beyond-64-bits", f"{SHAPE} --seed 99999999999999999999999", "does not fit a 64-bit generator seed"),
        case("guidance-nan", f"{SHAPE} --guidance nan --out {{out.glb}}", "--guidance nan is not a finite number"),
        case("guidance-inf", f"{SHAPE} --guidance inf", "--guidance inf is not a finite number"),
        case("batched-embedding", "shape --model {model} --embedding {cond3} --steps 2 --octree 8 --quiet "
             "--out {out.glb}", "holds 3 embeddings", "writes one mesh"),
        case("empty-embedding", "shape --model {model} --embedding {cond_empty} --steps 2 --octree 8 --quiet",
             "image tokens have shape (1, 0, 16)", "at least one token"),
        case("nan-embedding", "shape --model {model} --embedding {cond_nan} --steps 2 --octree 8 --quiet",
             "entries of the image tokens are NaN or inf"),
        case("nan-weights", "shape --model {model_nan} --embedding {cond} --steps 2 --octree 8 --quiet --dtype fp32",
             "the DiT weight", "contains NaN or inf", "download them again"),
        case("config-wrong-type", "shape --model {model_typed} --embedding {cond} --quiet",
             "config.yaml: model.params.hidden_size = 'thirty-two' must be a whole number"),
        case("config-nonsense-value", "shape --model {model_depth} --embedding {cond} --quiet",
             "config.yaml: model.params.depth = -1 must be >= 0"),
        case("bogus-variant", "shape --model {model} --embedding {cond} --variant bogus --quiet",
             "no weight file for variant 'bogus'", "looked for model.bogus.safetensors", "model.fp16.safetensors",
             "--variant (fp16)"),
        case("out-is-a-folder", f"{SHAPE} --out {{folder}}", "is a directory; give a file name", "such as mesh.glb"),
        case("image-is-a-folder", "shape --model {model} --image {folder} --quiet", "is a directory"),
        case("embedding-is-a-folder", "shape --model {model} --embedding {folder} --quiet", "is a directory"),
        case("embedding-random-bytes", "shape --model {model} --embedding {random_pt} --quiet",
             "not a PyTorch file"),
        case("unknown-primitive", "shape --model mini --primitive donut --quiet --out {out.glb}",
             "unknown primitive 'donut'", "valid primitives: sphere"),
        case("image-not-an-image", "shape --model mini --image {random_pt} --quiet --out {out.glb}",
             "cannot read image", "give a PNG or JPEG file"),
    ],
    "figures": [
        case("unknown-format", "figures --out {folder} --format gif", "invalid choice: 'gif'", rc=2),
        case("unknown-figure", "figures --out {folder} --only nosuch", "unknown figure(s) nosuch", "segment_jumps"),
        case("dpi-out-of-range", "figures --out {folder} --dpi 0", "--dpi must be an integer from 30 to 600"),
    ],
    "exercises": [
        case("no-out", "exercises", "say what to write: --out DIR (student notebooks), --key DIR (answer key)"),
        case("key-into-the-student-folder", "exercises --out {folder} --key {folder}", "must name different folders"),
        case("key-is-a-file", "exercises --key {out.json}", "is a file; give a folder for the answer key"),
        case("nbgrader-parent-missing", "exercises --nbgrader /nonexistent/flowlab-x/course",
             "its parent folder '/nonexistent/flowlab-x' does not exist"),
        case("source-missing", "exercises --out {folder} --source /nonexistent/flowlab-exercises",
             "no solved exercise notebooks (EX_*.ipynb) found in /nonexistent/flowlab-exercises"),
    ],
    "train-shape": [
        case("vae-batch-beyond-memory", "train-shape --out {folder} --device cpu --vae-batch 1000000000",
             "--vae-batch 1000000000 needs about", "use a smaller --vae-batch"),
        case("pool-beyond-memory", "train-shape --out {folder} --device cpu --pool 100000000",
             "--pool 100000000 needs about", "use a smaller --pool"),
        case("out-is-a-file", "train-shape --out {out.json} --smoke", "exists and is not a folder"),
        case("seed-beyond-64-bits", "train-shape --out {folder} --smoke --seed 99999999999999999999999",
             "does not fit a 64-bit generator seed"),
        case("unknown-stage", "train-shape --out {folder} --smoke --stages vae,foo", "--stages 'vae,foo'"),
        case("negative-steps", "train-shape --out {folder} --smoke --vae-steps -3", "--vae-steps must be >= 1"),
        case("nan-time", "train-shape --out {folder} --smoke --dit-time nan",
             "--dit-time must be a positive number of seconds"),
        case("init-missing", "train-shape --out {folder} --smoke --init /nonexistent/flowlab-run",
             "--init '/nonexistent/flowlab-run' is not a folder"),
    ],
    "course": [
        case("no-out", "course", "the following arguments are required: --out", rc=2),
        case("out-is-a-file", "course --out {out.json}", "is a file; give a folder for the course kit"),
        case("parent-missing", "course --out /nonexistent/flowlab-x/kit", "its parent folder '/nonexistent/flowlab-x'"),
    ],
    "notebooks": [
        case("no-out", "notebooks", "say where to copy the tutorial: --out DIR"),
        case("parent-missing", "notebooks --out /nonexistent/flowlab-x/nb", "its parent folder '/nonexistent/flowlab-x'"),
    ],
    "check": [
        case("no-target", "check", "the following arguments are required: FILE.py:FUNCTION", rc=2),
        case("not-a-python-file", "check /nonexistent/flowlab-x.py:f --convention reversed",
             "'/nonexistent/flowlab-x.py' is not a Python file", rc=2),   # flowlab check: 2 is bad usage, 1 findings
        case("no-function-named", "check /etc/hostname --convention reversed", "expected FILE.py:FUNCTION", rc=2),
    ],
}

#: Commands whose faults are tested elsewhere (with the reason).
EXEMPT = {
    "tour": "a notebook that is not JSON, SIGINT, timeouts: tests/test_tour.py (needs notebooks and kernels)",
}
