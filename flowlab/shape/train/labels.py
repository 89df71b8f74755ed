"""What the VAE decoder learns to output at a query point: the label kinds of ``train-shape --labels``.

``binary`` (the release's): occupancy 0 / 1 and ``BCE(logit, occupancy)``: one bit a query.

``tsdf`` (issue 21's lever, after Hunyuan3D-2.1's SDF labels): the logit is regressed on the truncated
signed distance in logit units, ``target(x) = -sdf(x) / tau``. Inside the band ``|sdf| < clip * tau`` the
loss is ``|logit - target|``; beyond it only the side counts, the hinge ``max(0, clip - s * logit)`` with
``s = +1`` inside and ``-1`` outside (the logit has to be past ``+-clip``, not equal to it).

Both keep the released decoder's meaning, positive inside and the surface at logit 0, so the pipeline,
the octree decoding and hy3dgen's classes read a tsdf-trained VAE as they read the release. What changes
is the information a query carries near the surface: how far the surface is, not only on which side. That
is what thin parts need: ``benchmarks/mini_bounds.py`` shows that a surface 0.006 off (a fifth of a 65^3
grid cell) already costs a table 0.2 IoU. Measured on a small model (``benchmarks/mini_small.py``), tsdf
learned far slower than binary (held-out IoU 0.33 against 0.70 after 3,000 steps, the KL falling instead of
rising): binary stays the default.

The distances come from :class:`flowlab.shape.data.primitives.ShapeBatch.sdf`: exact sign everywhere, the
distance exact for most parts and a first-order bound for ellipsoids and near CSG cuts (the mug's rim), so
the zero level set, which decoding reads, is exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import FlowlabError

__all__ = ["LABELS", "Labels"]

#: ``train-shape --labels`` choices.
LABELS = ("binary", "tsdf")


@dataclass(frozen=True)
class Labels:
    """A label kind and, for ``tsdf``, its scale ``tau`` (distance per logit unit) and band ``clip`` (logits)."""

    kind: str = "binary"
    tau: float = 0.01
    clip: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in LABELS:
            raise FlowlabError(f"labels {self.kind!r} is not one of {', '.join(LABELS)}")
        for name, value in (("tau", self.tau), ("clip", self.clip)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise FlowlabError(f"tsdf {name} must be a finite number > 0, got {value!r}")

    @property
    def loss_name(self) -> str:
        """The label loss's name in the training log: ``bce`` or ``tsdf``."""
        return "bce" if self.kind == "binary" else "tsdf"

    def target(self, sdf: Tensor) -> Tensor:
        """The tsdf target in logit units: ``clamp(-sdf / tau, -clip, clip)`` (positive inside)."""
        return (-sdf / self.tau).clamp(-self.clip, self.clip)

    def loss(self, logits: Tensor, sdf: Tensor) -> Tensor:
        """Mean loss of decoder ``logits`` against the signed distances ``sdf`` (same shape, negative inside)."""
        logits, sdf = logits.float(), sdf.float()
        if self.kind == "binary":
            return F.binary_cross_entropy_with_logits(logits, (sdf < 0).float())
        target = self.target(sdf)  # +-clip beyond the band, whose sign is the side
        band = target.abs() < self.clip
        return torch.where(band, (logits - target).abs(), F.relu(self.clip - target.sign() * logits)).mean()
