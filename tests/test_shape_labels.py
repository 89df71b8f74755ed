"""The VAE's label kinds (flowlab.shape.train.labels): BCE on occupancy and the truncated-SDF loss, checked
against hand-computed values and against plausible wrong variants (flipped sign, moved surface, no hinge)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from flowlab.cli import main
from flowlab.errors import FlowlabError
from flowlab.shape.train.labels import Labels
from flowlab.shape.train.loop import SMOKE, TrainOptions, build_models, vae_batch, vae_loss

pytestmark = pytest.mark.usefixtures("one_thread")

# signed distances, negative inside, none at 0 or symmetric: 4 in the band |sdf| < 0.05, 2 beyond it
SDF = torch.tensor([-0.023, -0.007, 0.004, 0.031, 0.2, -0.3])
TSDF = Labels("tsdf", tau=0.01, clip=5.0)


def test_the_tsdf_target_is_positive_inside_and_clipped() -> None:
    # -sdf / tau by hand: 2.3, 0.7, -0.4, -3.1, then clipped at -5 and +5
    assert torch.allclose(TSDF.target(SDF), torch.tensor([2.3, 0.7, -0.4, -3.1, -5.0, 5.0]), atol=1e-6)


def test_the_tsdf_loss_is_zero_only_for_the_right_logits() -> None:
    right = torch.tensor([2.3, 0.7, -0.4, -3.1, -7.5, 9.0])  # beyond the band: past -5 / +5 on the right side
    assert float(TSDF.loss(right, SDF)) < 1e-6
    # the surface moved by 0.003 (logits shifted by 0.3 in the band, still past the clip beyond it): 4 x 0.3 / 6
    moved = right + torch.tensor([0.3, 0.3, 0.3, 0.3, 0.0, 0.0])
    assert float(TSDF.loss(moved, SDF)) == pytest.approx(4 * 0.3 / 6, abs=1e-6)
    # the sign convention flipped (negative inside, as an SDF itself): the band pays 2 |target|, beyond pays the hinge
    flipped = -right
    expected = (2 * (2.3 + 0.7 + 0.4 + 3.1) + (5 + 7.5) + (5 + 9.0)) / 6
    assert float(TSDF.loss(flipped, SDF)) == pytest.approx(expected, abs=1e-5)
    # beyond the band a logit short of the clip pays the shortfall (a loss without the hinge would not)
    short = right.clone()
    short[4], short[5] = -4.0, 2.5
    assert float(TSDF.loss(short, SDF)) == pytest.approx((1.0 + 2.5) / 6, abs=1e-6)


def test_the_binary_loss_is_bce_on_occupancy() -> None:
    logits = torch.tensor([1.2, -0.4, 0.9, -2.0, 0.3, 1.7])
    occ = [1, 1, 0, 0, 0, 1]  # sdf < 0
    by_hand = sum(math.log1p(math.exp(-x)) if o else math.log1p(math.exp(x)) for x, o in zip(logits.tolist(), occ)) / 6
    assert float(Labels().loss(logits, SDF)) == pytest.approx(by_hand, rel=1e-6)
    # labels read as "sdf > 0 inside" would give another number
    wrong = sum(math.log1p(math.exp(x)) if o else math.log1p(math.exp(-x)) for x, o in zip(logits.tolist(), occ)) / 6
    assert abs(by_hand - wrong) > 0.3


@pytest.mark.parametrize("kw, match", [(dict(kind="sdf"), "not one of binary, tsdf"),
                                       (dict(kind="tsdf", tau=0.0), "tau must be a finite number > 0"),
                                       (dict(kind="tsdf", tau=float("nan")), "tau must be"),
                                       (dict(kind="tsdf", clip=-1.0), "clip must be"),
                                       (dict(kind="tsdf", tau=True), "tau must be")])
def test_bad_labels_are_refused(kw, match) -> None:
    with pytest.raises(FlowlabError, match=match):
        Labels(**kw)


def test_vae_batch_gives_the_signed_distance_of_each_query() -> None:
    from flowlab.shape.data.primitives import random_shapes

    shapes = random_shapes(3, 11, families=["mug", "table", "torus"])
    surf, nrm, q, sdf = vae_batch(shapes, TrainOptions(surface_points=128, queries=600), torch.Generator().manual_seed(3))
    assert q.shape == (3, 600, 3) and sdf.shape == (3, 600)
    assert torch.equal(sdf, shapes.sdf(q)) and torch.equal(sdf < 0, shapes.occupancy(q))
    assert 0.05 < float((sdf < 0).float().mean()) < 0.95  # both sides present


def test_tsdf_training_fits_a_batch_and_moves_the_surface_to_the_labels() -> None:
    """30 Adam steps on one fixed batch: the tsdf loss falls and the sign agreement rises, so the gradient
    reaches the decoder and the encoder through the loss (a loss with a wrong sign would push it away)."""
    from flowlab.shape.data.primitives import random_shapes

    torch.manual_seed(0)
    m = build_models(SMOKE)
    enc, vae = m["encoder"], m["vae"]
    batch = vae_batch(random_shapes(2, 5, families=["table"]), TrainOptions(surface_points=64, queries=256),
                      torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(list(enc.parameters()) + list(vae.parameters()), lr=3e-3)
    first = None
    for _ in range(30):
        loss, parts = vae_loss(enc, vae, batch, torch.Generator().manual_seed(2), 1e-3, sample=False, labels=TSDF)
        first = first if first is not None else (float(parts["tsdf"]), float(parts["acc"]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(parts["tsdf"]) < 0.6 * first[0]
    assert float(parts["acc"]) > first[1]


def test_train_shape_labels_tsdf_logs_its_loss_and_bad_values_write_nothing(tmp_path: Path, capsys) -> None:
    assert main(["train-shape", "--smoke", "--labels", "tsdf", "--stages", "vae", "--out", str(tmp_path / "t")]) == 0
    log = json.loads((tmp_path / "t" / "train_log.json").read_text())
    assert log["options"]["labels"] == "tsdf" and len(log["vae"]["tsdf"]) == len(log["vae"]["loss"]) > 0
    assert "bce" not in log["vae"]
    assert main(["train-shape", "--smoke", "--labels", "tsdf", "--tsdf-tau", "0", "--out", str(tmp_path / "bad")]) == 1
    assert "tsdf tau must be a finite number > 0, got 0.0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
