"""flowlab train-shape: the smoke run, determinism, the reversed flow-matching target, the encoder parts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from flowlab.cli import main
from flowlab.errors import FlowlabError
from flowlab.shape.models.encoder import DiagonalGaussian, ShapeVAEEncoder, EncoderConfig, farthest_point_sampling
from flowlab.shape.train.loop import SMOKE, TrainOptions, build_models, flow_matching_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def test_smoke_run_trains_evaluates_and_is_deterministic(tmp_path: Path, capsys) -> None:
    for name in ("a", "b"):
        assert main(["train-shape", "--smoke", "--out", str(tmp_path / name)]) == 0
    la = json.loads((tmp_path / "a" / "train_log.json").read_text())
    lb = json.loads((tmp_path / "b" / "train_log.json").read_text())
    assert la["vae"]["loss"] == lb["vae"]["loss"] and la["dit"]["loss"] == lb["dit"]["loss"]
    assert la["eval"]["vae_iou"] == lb["eval"]["vae_iou"]
    assert la["vae_steps"] == 4 and la["dit_steps"] == 4
    assert all(torch.isfinite(torch.tensor(la["vae"]["loss"] + la["dit"]["loss"])))
    for f in ("encoder", "vae", "dit", "conditioner"):
        assert (tmp_path / "a" / f"{f}.safetensors").is_file()
    # the checkpoints export to the shipped layout, which load_pipeline reads strictly
    from flowlab.shape.load.mini import export_folder, mini_folder
    from flowlab.shape.load.folder import load_pipeline

    dest = export_folder(tmp_path / "a", tmp_path / "shipped")
    pipe = load_pipeline(mini_folder(dest), with_conditioner=True, dtype=torch.float32)
    assert pipe.dit.config.hidden_size == SMOKE.dit.hidden_size
    assert "vae_iou" in capsys.readouterr().out


def test_bad_stage_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FlowlabError, match="subset of vae,dit,eval"):
        from flowlab.commands import train_shape
        import argparse

        p = argparse.ArgumentParser()
        train_shape.add_arguments(p)
        train_shape.run(p.parse_args(["--out", str(tmp_path), "--stages", "vae,finetune"]))


def test_flow_matching_loss_is_the_reversed_convention() -> None:
    """x_t = t D + (1 - t) E and target D - E, written out here independently of flowlab.conventions."""
    models = build_models(SMOKE, 0)
    dit, cond = models["dit"].eval(), models["conditioner"].eval()
    opts = TrainOptions(cfg_dropout=0.0)
    images = torch.randn(3, 3, 16, 16)
    data = torch.randn(3, SMOKE.vae.num_latents, SMOKE.vae.embed_dim)
    loss = flow_matching_loss(dit, cond, images, data, opts, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    torch.rand(3, generator=g)  # the dropout draw
    t = torch.rand(3, generator=g)
    e = torch.randn(data.shape, generator=g)
    x = t[:, None, None] * data + (1 - t[:, None, None]) * e
    with torch.no_grad():
        expected = ((dit(x, t, cond(images)) - (data - e)) ** 2).mean()
    assert abs(loss.item() - float(expected)) < 1e-6
    # with the conventional interpolant the loss differs: the test can tell the conventions apart
    x_conv = (1 - t[:, None, None]) * data + t[:, None, None] * e
    with torch.no_grad():
        wrong = ((dit(x_conv, t, cond(images)) - (e - data)) ** 2).mean()
    assert abs(float(wrong) - loss.item()) > 1e-3


def test_cfg_dropout_feeds_zero_tokens() -> None:
    models = build_models(SMOKE, 0)
    dit, cond = models["dit"].eval(), models["conditioner"].eval()
    images = torch.randn(2, 3, 16, 16)
    data = torch.randn(2, SMOKE.vae.num_latents, SMOKE.vae.embed_dim)
    dropped = flow_matching_loss(dit, cond, images, data, TrainOptions(cfg_dropout=1.0), torch.Generator().manual_seed(1))
    zero_cond = flow_matching_loss(dit, lambda im: torch.zeros(2, cond.num_tokens, SMOKE.image["width"]), images, data,
                                   TrainOptions(cfg_dropout=0.0), torch.Generator().manual_seed(1))
    assert abs(dropped.item() - zero_cond.item()) < 1e-6


def test_farthest_point_sampling_spreads_and_encoder_shapes() -> None:
    pts = torch.cat([torch.zeros(1, 50, 3), torch.ones(1, 50, 3), -torch.ones(1, 1, 3)], dim=1)
    idx = farthest_point_sampling(pts, 3)
    picked = pts[0, idx[0]]
    assert {tuple(p.tolist()) for p in picked} == {(0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (-1.0, -1.0, -1.0)}
    enc = ShapeVAEEncoder(EncoderConfig(num_latents=8, embed_dim=4, width=16, heads=2))
    post = enc(torch.rand(2, 40, 3), torch.randn(2, 40, 3))
    assert post.mean.shape == (2, 8, 4) and post.sample().shape == (2, 8, 4)


def test_kl_is_zero_for_the_standard_normal_and_positive_otherwise() -> None:
    assert float(DiagonalGaussian(torch.zeros(2, 5, 8)).kl().abs().max()) == 0.0
    m = torch.cat([torch.full((1, 5, 4), 0.5), torch.zeros(1, 5, 4)], dim=-1)
    assert abs(float(DiagonalGaussian(m).kl()[0]) - 0.5 * 0.25) < 1e-6


@pytest.mark.parametrize("before", [(True, False), (False, True)])
def test_train_and_evaluate_restore_the_callers_tf32_settings(monkeypatch, before) -> None:
    """train() runs with TF32 on and evaluate() with it off on CUDA; both leave the caller's settings as they were."""
    import flowlab.shape.train.loop as loop

    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (matmul.allow_tf32, cudnn.allow_tf32)
    seen = {}
    monkeypatch.setattr(loop, "_train", lambda *a, **k: seen.setdefault("train", (matmul.allow_tf32, cudnn.allow_tf32)))

    def failing_eval(*a, **k):
        seen["eval"] = (matmul.allow_tf32, cudnn.allow_tf32)
        raise RuntimeError("evaluation failed")
    monkeypatch.setattr(loop, "_evaluate", failing_eval)
    try:
        matmul.allow_tf32, cudnn.allow_tf32 = before
        opts = TrainOptions(device="cuda")  # only the device type is read before the (replaced) stages
        loop.train(Path("unused"), opts=opts)
        assert seen["train"] == (True, True) and (matmul.allow_tf32, cudnn.allow_tf32) == before
        with pytest.raises(RuntimeError, match="evaluation failed"):
            loop.evaluate(None, None, None, None, 1.0, opts)
        assert seen["eval"] == (False, False) and (matmul.allow_tf32, cudnn.allow_tf32) == before
        loop.train(Path("unused"), opts=TrainOptions(device="cpu"))  # CPU: nothing is touched
        assert (matmul.allow_tf32, cudnn.allow_tf32) == before
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved
