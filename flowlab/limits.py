"""Up-front checks that a request fits: memory estimates, step counts and seeds.

A request that cannot fit is refused before any work with a :class:`FlowlabError` that gives the
estimate and the limit, instead of a raw allocator error minutes (or hours) later.

* :func:`check_memory`: ``nbytes`` against the memory available now (``MemAvailable`` of
  ``/proc/meminfo`` on Linux, the free memory of a CUDA device), with a safety factor.
* :func:`check_seed`: seeds must fit torch's generator (``-2**63 <= seed < 2**64``).
* :data:`MAX_STEPS`: the most steps a CLI command runs (a loop of more than 100,000 Euler steps is
  never what a user meant: float32 time steps below 1e-5 are round-off).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .errors import FlowlabError

__all__ = ["MAX_STEPS", "SEED_MIN", "SEED_MAX", "available_memory", "check_memory", "check_seed", "check_count",
           "human_bytes", "derived_seed"]

if TYPE_CHECKING:
    import torch

#: The most steps (or model calls) a CLI command accepts.
MAX_STEPS = 100_000
#: torch.Generator.manual_seed accepts exactly this range.
SEED_MIN, SEED_MAX = -(2 ** 63), 2 ** 64 - 1
#: Fraction of the available memory a request may plan to use.
MEMORY_FRACTION = 0.8


def human_bytes(n: float) -> str:
    """``1.5e9 -> '1.4 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes that can be allocated now on ``device`` (host RAM for the CPU, free memory for CUDA)."""
    import torch  # here, not at the top: the CLI's --help reads SEED_MAX and must not import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 2 ** 62


def check_memory(nbytes: float, what: str, hint: str, device: torch.device | str = "cpu") -> None:
    """Refuse when ``nbytes`` (an estimate) exceeds :data:`MEMORY_FRACTION` of the memory available on ``device``."""
    limit = available_memory(device) * MEMORY_FRACTION
    if nbytes > limit:
        import torch

        dev = torch.device(device)
        where = "free GPU memory" if dev.type == "cuda" else "available RAM"
        raise FlowlabError(f"{what} needs about {human_bytes(nbytes)}, more than the {human_bytes(limit)} this "
                           f"machine can give it ({MEMORY_FRACTION:.0%} of the {where}); {hint}")


def check_seed(seed: object, flag: str = "--seed") -> int:
    """``seed`` as an int that torch's generators accept; a FlowlabError for anything else."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise FlowlabError(f"{flag} must be a whole number, got {seed!r}")
    if not SEED_MIN <= seed <= SEED_MAX:
        raise FlowlabError(f"{flag} {seed} does not fit a 64-bit generator seed; use a number from 0 to "
                           f"{SEED_MAX} (2**64 - 1)")
    return seed


def check_count(value: object, flag: str, *, maximum: int | None = None, minimum: int = 1, why: str = "") -> int:
    """A whole number in ``[minimum, maximum]``; the message names the flag, the value and the limit."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FlowlabError(f"{flag} must be a whole number, got {value!r}")
    if value < minimum:
        raise FlowlabError(f"{flag} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise FlowlabError(f"{flag} {value} is more than the limit of {maximum:,}" + (f": {why}" if why else ""))
    return value


def derived_seed(seed: int, offset: int) -> int:
    """The seed of a second generator derived from ``seed``: ``seed + offset``, wrapped into the 64-bit range.

    Identical to ``seed + offset`` whenever that fits (torch reads a negative seed modulo 2**64 too), so
    every seed in ``[SEED_MIN, SEED_MAX]`` works, also the last ones (``2**64 - 1`` plus one would overflow)."""
    value = seed + offset
    return value if SEED_MIN <= value <= SEED_MAX else value % (SEED_MAX + 1)
