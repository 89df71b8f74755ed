"""Agreement with the reference implementation (hy3dgen 2.0.2), from the committed fixtures.

tools/make_reference_fixtures.py runs the reference on seeded small configurations and stores
weights, inputs and outputs under tests/data/hy3dgen/; :func:`parity_report` loads them into
flowlab's modules and measures the differences. No reference code is needed to run it.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..models.dit import ShapeDiT
from ..decode.isosurface import max_nearest_distance
from ..decode.mesh import marching_cubes
from ..pipeline import SAMPLING_CONVENTIONS, ShapePipeline
from ..load.config import dit_config_from_params, vae_config_from_params
from ..models.vae import ShapeVAE
from ..decode.volume import decode_dense

__all__ = ["FIXTURES", "FP16_TOL", "ParityRow", "parity_report", "rel_err"]

#: Where the fixtures live in a source checkout.
FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "data" / "hy3dgen"


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b| / max |b|`` in float64."""
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@dataclass(frozen=True)
class ParityRow:
    """One comparison: what, the measured relative error (0.0 = bitwise), whether it was bitwise, and
    the tolerance it is held to (1e-5 in float32; two fp16 ulps, 2 * 2**-10, in fp16, whose CPU matrix
    products go through processor-specific kernels)."""

    what: str
    error: float
    bitwise: bool
    tol: float = 1e-5

    @property
    def passed(self) -> bool:
        return self.error <= self.tol


#: Tolerance of the fp16 rows: two fp16 ulps relative to the largest value.
FP16_TOL = 2 * 2.0 ** -10


def _section(d: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}


@torch.no_grad()
def parity_report(data_dir: str | Path | None = None) -> list[ParityRow]:
    """Forward passes, volume decode, mesh and 4-step sampling against the reference fixtures."""
    from safetensors.torch import load_file

    root = Path(data_dir) if data_dir is not None else FIXTURES
    facts = json.loads((root / "fixtures.json").read_text())
    small = facts["small"]
    rows: list[ParityRow] = []

    def add(what: str, got: torch.Tensor, want: torch.Tensor, tol: float = 1e-5) -> None:
        rows.append(ParityRow(what, rel_err(got, want), bool(torch.equal(got, want)), tol))

    dits = {}
    for name in ("dit", "dit_guided"):
        d = load_file(str(root / f"{name}.safetensors"))
        dit = ShapeDiT(dit_config_from_params(dict(small["dit"], guidance_embed=name == "dit_guided"))).eval()
        dit.load_state_dict(_section(d, "model."), strict=True)
        v = dit(d["in.x"], d["in.t"], d["in.cond"], guidance=d["in.guidance"] if name == "dit_guided" else None)
        add(f"DiT forward ({'guidance-embedded' if name == 'dit_guided' else 'CFG model'})", v, d["out.v"])
        dits[name] = dit
    vaes = {}
    for name in ("vae", "vae_turbo"):
        d = load_file(str(root / f"{name}.safetensors"))
        vae = ShapeVAE(vae_config_from_params(small[name])).eval()
        vae.load_state_dict(_section(d, "vae."), strict=True)
        label = "turbo VAE" if name == "vae_turbo" else "VAE"
        add(f"{label}: post_kl + transformer", vae(d["in.z"]), d["out.tokens"])
        logits = decode_dense(vae.geo_decoder, vae.decode_latents(d["in.z"]), small["octree"],
                              chunk_size=small["chunks"])[0]
        add(f"{label}: occupancy logits on a {small['octree'] + 1}^3 grid", logits, d["out.logits"])
        # marching cubes + vertex mapping on the reference's own volume: the same mesh
        ref_mesh = marching_cubes(d["out.logits"])
        add(f"{label}: mesh vertices from the reference volume", torch.from_numpy(ref_mesh.vertices).float(),
            d["out.vertices"].float())
        # on flowlab's volume (round-off apart) lewiner may order or split a few ambiguous cubes
        # differently: every vertex must still lie on a reference vertex
        mesh = marching_cubes(logits)
        want = d["out.vertices"].double().numpy()
        nearest = max_nearest_distance(mesh, want)
        rows.append(ParityRow(f"{label}: mesh from flowlab's volume, distance to the nearest reference vertex",
                              nearest / float(np.abs(want).max()), nearest == 0))
        vaes[name] = vae
    s = load_file(str(root / "sampling.safetensors"))
    cases = {"f32": ("dit", torch.float32, "flow"), "f16": ("dit", torch.float16, "flow"),
             "turbo_f32": ("dit_guided", torch.float32, "consistency"),
             "turbo_f16": ("dit_guided", torch.float16, "consistency")}
    for tag, (dit_name, dtype, scheduler) in cases.items():
        for conv in (c.name for c in SAMPLING_CONVENTIONS):
            # the pipeline casts its modules in place: copies keep the float32 originals
            pipe = ShapePipeline(dit=copy.deepcopy(dits[dit_name]), vae=copy.deepcopy(vaes["vae"]),
                                 scheduler=scheduler, pcm_timesteps=100, dtype=dtype)
            lat = pipe.sample_latents(s["in.cond"], steps=small["steps"], guidance=small["guidance"],
                                      seed=small["seed"], convention=conv).float()
            kind = "turbo (guidance-embedded, consistency schedule)" if "turbo" in tag else "CFG 5.0"
            add(f"{small['steps']}-step sampling, {kind}, {'fp16' if '16' in tag else 'float32'}, {conv}",
                lat, s[f"out.{tag}.latents"], FP16_TOL if "16" in tag else 1e-5)
    return rows
