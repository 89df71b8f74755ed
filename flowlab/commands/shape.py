"""``flowlab shape``: image -> 3D mesh with the Hunyuan3D-2 shape model, in either timestep convention."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: flowlab.shape.pipeline's DECODE_MODES and SAMPLING_CONVENTIONS' names (the first is the default), written out
#: so that --help imports no torch; tests/test_cli_help.py keeps them equal to the pipeline's.
DECODE_MODES = ("hierarchical", "dense")
SAMPLING_CONVENTION_NAMES = ("reversed", "conventional")

NAME = "shape"
HELP = "generate a mesh from an image with a Hunyuan3D-2 shape model (either convention)"
DESCRIPTION = """\
Run a Hunyuan3D-2 shape checkpoint (official folder layout: config.yaml + model{.fp16}.{safetensors,ckpt})
on one image and write the mesh (.glb, .obj or .ply).

--model is a folder, or a Hugging Face repo id (tencent/Hunyuan3D-2 or tencent/Hunyuan3D-2/SUBFOLDER) looked
up in $HY3DGEN_MODELS (default ~/.cache/hy3dgen) and the Hugging Face cache; --download fetches it.

--convention reversed samples the model as released (t: 0 = noise -> 1 = data); --convention conventional
samples the flipped model (sigma = 1 - t, v' = -v) along sigma: 1 -> 0. Both give the same mesh up to
round-off. --schedule corrected (default) makes --steps effective steps from --steps model calls;
--schedule reference reproduces hy3dgen's schedule, whose last call is wasted (linspace(0, 1, N) + [1.0]).
With --schedule reference --time-rounding reference the arithmetic is the reference's, bit for bit.
--embedding FILE (.safetensors / .pt / .npy with one (1, L, 1536) tensor) skips the image encoder.
--octree defaults to the model folder's decoding resolution (384 for the released models, 128 for mini).
--model mini is the small trained model that ships with flowlab (offline, CPU); --primitive NAME renders one
of flowlab's procedural shapes (seeded by --seed) with the training camera and generates from that image."""


#: Library parameter spellings in error messages -> this command's flags (flowlab.cli rewrites the message).
FLAGS = {"download=True": "--download", "model= ": "--model ", "model=": "--model", "vae=": "--vae",
         "variant= ": "--variant ", "octree= ": "--octree ", "chunk_size= ": "--chunk-size ",
         "sample_latents(cond=...)": "--embedding FILE", "device='cpu'": "--device cpu",
         "dtype=torch.float32": "--dtype fp32", "dtype=torch.bfloat16": "--dtype bf16"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="PATH_OR_REPO",
                        help="model folder, HF repo id, or 'mini' (the trained mini model shipped with flowlab)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", metavar="IMG", help="input image (RGBA with transparent background, or RGB)")
    src.add_argument("--embedding", metavar="FILE", help="precomputed image tokens instead of --image")
    src.add_argument("--primitive", metavar="NAME", help="render a procedural shape (torus, mug, ...) as the image")
    parser.add_argument("--steps", type=int, default=50, help="model calls (default 50)")
    parser.add_argument("--guidance", type=float, default=5.0, help="CFG scale w: v_u + w (v_c - v_u) (default 5.0)")
    parser.add_argument("--octree", type=int, default=None,
                        help="grid resolution R: (R+1)^3 queries (default: the model folder's, 384 released / 128 mini)")
    parser.add_argument("--chunk-size", type=int, default=8000, metavar="N", help="points a decoder call (default 8000)")
    parser.add_argument("--decode", default=DECODE_MODES[0], choices=DECODE_MODES,
                        help="volume decoding: coarse to fine, the network only near the surface (default), or "
                             "every grid point (the reference)")
    parser.add_argument("--kv-topk", type=int, default=None, metavar="K",
                        help="hierarchical decoding: each group of 1024 points attends only to its K most "
                             "important latent tokens (default: all tokens)")
    parser.add_argument("--isosurface", default="auto", choices=["auto", "skimage", "torch"],
                        help="marching cubes: skimage lewiner on the CPU (the reference), torch (where the volume "
                             "is), or auto (default: torch on a GPU, skimage on the CPU)")
    parser.add_argument("--convention", default=SAMPLING_CONVENTION_NAMES[0],
                        choices=SAMPLING_CONVENTION_NAMES,
                        help="sampling convention (default reversed, as released)")
    parser.add_argument("--time-rounding", default="reference", choices=["reference", "none"],
                        help="t fed to the DiT: 'reference' rounds 1000 t to the latents' dtype as hy3dgen does "
                             "(bitwise parity); 'none' passes float32 t")
    parser.add_argument("--schedule", default="corrected", choices=["corrected", "reference"],
                        help="'corrected': N effective steps from N calls (default); 'reference': hy3dgen's "
                             "linspace(0, 1, N) + [1.0], whose last call is wasted")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial noise (CPU generator)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp16", "bf16", "fp32"],
                        help="weights and latents dtype (auto: fp16 on CUDA, fp32 on CPU)")
    parser.add_argument("--vae", metavar="FOLDER", help="standalone VAE folder to use instead (e.g. the turbo VAE)")
    parser.add_argument("--variant", default="fp16", help="weight file variant, model.VARIANT.* (default fp16; "
                                                             "'none' for model.*)")
    parser.add_argument("--download", action="store_true", help="download the model with huggingface_hub if missing")
    parser.add_argument("--out", default="mesh.glb", help="output mesh: .glb, .obj or .ply (default mesh.glb); "
                        "a symbolic link is written through to its target")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    from ._common import add_yes

    add_yes(parser)


def _check_out(path: Path) -> None:
    from ..shape.decode.mesh import EXPORT_FORMATS
    from ._common import check_out_file

    check_out_file(path, EXPORT_FORMATS, example="mesh.glb", kind="unknown mesh format")


def _check_inputs(args: argparse.Namespace) -> None:
    """Refuse inputs that make no mesh or cannot fit, before any weights are read."""
    import math

    from ..errors import FlowlabError
    from ..limits import MAX_STEPS, check_count, check_seed

    check_count(args.steps, "--steps", maximum=MAX_STEPS, why="each step is a DiT call; 50 is the default")
    check_count(args.chunk_size, "--chunk-size")
    check_seed(args.seed)
    if not math.isfinite(args.guidance):
        raise FlowlabError(f"--guidance {args.guidance} is not a finite number; use a CFG scale such as 5.0 "
                           "(1 = the conditional model alone, a negative value = no guidance)")
    for flag, value in (("--image", args.image), ("--embedding", args.embedding)):
        if value is not None and Path(value).is_dir():
            raise FlowlabError(f"{flag} {value!r} is a directory; pass the file itself")
        if value is not None and not Path(value).is_file():
            raise FlowlabError(f"{flag} {value!r}: file not found")
    if args.octree is not None:  # None: the model folder's default, checked by the library once it is known
        from ..shape.decode.volume import check_resolution

        check_resolution(args.octree, name="--octree")  # before any weights are read


class _WorkMeter:
    """Estimates a stage's total time from its first units of work (a measured rate on this machine) and
    refuses, with the estimate, beyond the work limit without --yes (flowlab.commands._common.check_work)."""

    def __init__(self, total: float, what: str, hint: str, yes: bool, bar) -> None:
        self.total, self.what, self.hint, self.yes, self.bar = total, what, hint, yes, bar
        self.done, self.start, self.checked = 0.0, None, False

    def __call__(self, units: float = 1) -> None:
        import time

        from ._common import check_work

        self.bar.update(units)
        if self.start is None:  # the first unit includes warm-up: the rate is measured from the next ones
            self.start = time.perf_counter()
            return
        self.done += units
        elapsed = time.perf_counter() - self.start
        if not self.checked and (elapsed > 2.0 or self.done >= 2 * units):
            self.checked = True
            check_work(elapsed / self.done * self.total, self.what, self.hint, yes=self.yes)


def _check_decode_time(pipe, latents, points: int, octree: int, args: argparse.Namespace) -> None:
    """Time a dense decode of a small grid (about 4 chunks of --chunk-size points) and refuse, with the estimate
    for ``points`` queries, beyond the work limit without --yes."""
    import time

    from ._common import check_work

    r = max(1, min(31, round((4 * args.chunk_size) ** (1 / 3)) - 1))
    pipe.decode_volume(latents, octree=r, chunk_size=args.chunk_size, decode="dense")  # warm-up
    start = time.perf_counter()
    pipe.decode_volume(latents, octree=r, chunk_size=args.chunk_size, decode="dense")
    per_point = (time.perf_counter() - start) / (r + 1) ** 3
    check_work(per_point * points, f"decoding --octree {octree} with --chunk-size {args.chunk_size}",
               "use a smaller --octree or a larger --chunk-size", yes=args.yes)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ..device import resolve_device
    from ..errors import FlowlabError
    from ..schedules import n_effective_steps
    from ..shape.load.embedding import load_embedding
    from ..shape.decode.mesh import export_mesh
    from ..shape.load.folder import load_pipeline

    out = Path(args.out)
    _check_out(out)
    _check_inputs(args)
    decode = args.decode
    if args.kv_topk is not None and (args.kv_topk < 1 or decode != "hierarchical"):
        raise FlowlabError(f"--kv-topk {args.kv_topk}: needs K >= 1 and --decode hierarchical")
    device = resolve_device(args.device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}.get(
        args.dtype, torch.float16 if device.type == "cuda" else torch.float32)
    variant = None if args.variant.lower() == "none" else args.variant
    from ..shape.load.mini import resolve_model

    image = args.image
    if args.primitive:  # checked before any loading
        from ..shape.data.primitives import primitive
        from ..shape.data.render import render, to_pil

        image = to_pil(render(primitive(args.primitive, seed=args.seed)))
    pipe = load_pipeline(resolve_model(args.model), device=device, dtype=dtype, download=args.download,
                         variant=variant, vae=args.vae)
    octree = pipe.octree if args.octree is None else args.octree  # the folder's default (mini: 128)
    if args.octree is None:  # the folder's default: the memory check before any estimate or long work
        from ..shape.decode.volume import check_resolution

        check_resolution(octree)
    cond = pipe.check_embedding(load_embedding(args.embedding)) if args.embedding else pipe.encode_image(image)
    if cond.shape[0] != 1:
        raise FlowlabError(f"--embedding {args.embedding!r} holds {cond.shape[0]} embeddings (shape "
                           f"{tuple(cond.shape)}); flowlab shape writes one mesh: save one (1, L, C) embedding")

    n = octree + 1
    # hierarchical: the coarsest level densely plus a band around the surface at the finer ones, about
    # (R0 + 1)^3 + 30 (R + 1)^2 points (a single level, R < 126, is a dense decode)
    from ..shape.decode.volume import octree_levels

    r0 = octree_levels(octree)[0]
    points = n ** 3 if decode == "dense" or r0 == octree else min(n ** 3, (r0 + 1) ** 3 + 30 * n ** 2)
    # timed on a few chunks with placeholder latents (the cost does not depend on their values): before sampling
    _check_decode_time(pipe, torch.zeros((1, *pipe.vae.latent_shape), dtype=pipe.dtype, device=pipe.device),
                       points, octree, args)
    quiet = args.quiet
    bar = tqdm(total=args.steps, desc="sampling", unit="step", file=sys.stderr, disable=quiet)
    meter = _WorkMeter(args.steps - 1, f"--steps {args.steps}", "use fewer --steps (50 is the default)", args.yes, bar)
    latents = pipe.sample_latents(cond, steps=args.steps, guidance=args.guidance, convention=args.convention,
                                  seed=args.seed, exact=args.time_rounding == "reference",
                                  wasted_last_step=args.schedule == "reference",
                                  callback=lambda info: meter(1))
    bar.close()
    # The total is the dense grid's (R + 1)^3 points; hierarchical decoding evaluates only the points near the
    # surface (a fraction of them), so its bar stops short of the total and is completed when the volume is done.
    bar = tqdm(total=n ** 3, desc="decoding" if decode == "dense" else "decoding (of the dense grid)", unit="pt",
               unit_scale=True, file=sys.stderr, disable=quiet)
    logits = pipe.decode_volume(latents, octree=octree, chunk_size=args.chunk_size,
                                decode=decode, kv_topk=args.kv_topk, progress=bar.update)
    if not quiet:
        bar.total = bar.n  # what hierarchical decoding actually evaluated: the bar ends at 100 %
        bar.refresh()
    bar.close()
    mesh = pipe.mesh(logits, method=args.isosurface)
    export_mesh(mesh, out)
    eff = n_effective_steps(pipe.schedule(args.steps, wasted_last_step=args.schedule == "reference"))
    print(f"wrote {out}: {mesh.vertices.shape[0]} vertices, {mesh.faces.shape[0]} faces "
          f"({args.convention} convention, {args.steps} model calls, {eff} effective steps, seed {args.seed})")
    return 0
