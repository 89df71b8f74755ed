"""Convention cards: what each real system means by its time, and a check that runs its own code.

A :class:`Card` states, for one system, the direction of time, the interpolant, what the network
outputs, the data and noise predictions, the guidance-scale convention and the known traps. Each
card has a verifier (:func:`verify`) that runs the system's own code next to flowlab's on the same
inputs and returns :class:`Measurement` rows (max abs differences); ``tests/test_atlas_*.py`` make
the same comparisons independently and notebook 05 prints the table.

The libraries are optional test dependencies, pinned in :data:`PINS`. Two of them cannot be
installed with their declared dependencies beside a CPU torch (torchcfm pulls torchdyn and
pytorch-lightning, k-diffusion pulls torchvision and wandb): they are installed with
``pip install --no-deps`` and only the modules the cards need are imported. For k-diffusion that is
``k_diffusion/sampling.py`` alone, loaded from the installed distribution by
:func:`load_k_diffusion_sampling` (its package ``__init__`` imports torchvision).

Notation (notebooks/NOTATION.md): D = data, E = standard Gaussian noise, v = network output.
Conventional ``sigma`` runs 1 -> 0 (data at 0); reversed ``t`` runs 0 -> 1 (data at 1).

Modules: :mod:`.cards` (the cards and their helpers), :mod:`.verifiers` (the verifiers, tables, fixtures).
"""
from __future__ import annotations

from .cards import (PINS, NO_DEPS, require, load_k_diffusion_sampling, ProbeNet, probe_network, Card, CARDS, card,
                    diffusers_pred_x0, diffusers_terminal_sigma, ddim_flow_time, ddim_to_flow, ddim_flow_velocity)
from .verifiers import (Measurement, verify, atlas_table, paths_table, load_scheduler_fixture)

__all__ = [
    "PINS", "NO_DEPS", "require", "load_k_diffusion_sampling", "ProbeNet", "probe_network",
    "Card", "CARDS", "card", "Measurement", "verify", "atlas_table", "paths_table", "load_scheduler_fixture",
    "diffusers_pred_x0", "diffusers_terminal_sigma",
    "ddim_flow_time", "ddim_to_flow", "ddim_flow_velocity",
]
