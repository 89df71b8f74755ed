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
    # held-out curves during training: every VAE step of 4 (the last included), DiT steps before the final eval
    assert [p["step"] for p in la["curves"]["vae"]] == [1, 2, 3, 4]
    assert [p["step"] for p in la["curves"]["dit"]] == [1, 2, 3]
    assert set(la["curves"]["dit"][0]["image_iou"]) == set(la["eval"]["vae_iou"])


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


def test_mini_512_architecture_and_thin_part_sampling() -> None:
    from flowlab.shape.data.primitives import FAMILIES, random_shapes
    from flowlab.shape.train.loop import ARCHS, MINI, vae_batch, vae_families

    cfg, recipe = ARCHS["mini-512"]
    assert cfg.vae.num_latents == cfg.encoder.num_latents == 512
    assert cfg.dit.in_channels == cfg.vae.embed_dim == cfg.encoder.embed_dim == 32
    assert ARCHS["mini"] == (MINI, {}) and MINI.vae.num_latents == 128  # the shipped architecture stays
    opts = TrainOptions(**recipe, surface_points=256)
    fams = vae_families(opts)
    assert fams.count("mug") == fams.count("table") == 3 and all(fams.count(f) == 1 for f in FAMILIES[:8])
    drawn = random_shapes(3000, 5, families=fams).family
    share = float((drawn == FAMILIES.index("table")).float().mean())
    assert abs(share - 3 / 14) < 0.03  # not 1 / 10: the boost reaches the batches
    shapes = random_shapes(4, 1)
    _, _, q, occ = vae_batch(shapes, opts, torch.Generator().manual_seed(0))
    assert q.shape == (4, 6144, 3) and occ.shape == (4, 6144)
    d = shapes.sdf(q).abs()
    uniform, near = d[:, :1536], d[:, 1536:]  # 25 % uniform, then 75 % near the surface
    assert float(near.median()) < 0.02 < float(uniform.median())
    default = TrainOptions(surface_points=256)  # the shipped recipe: half and half, sigmas 0.01 / 0.05
    _, _, q0, _ = vae_batch(shapes, default, torch.Generator().manual_seed(0))
    assert q0.shape[1] == 4096 and float(shapes.sdf(q0).abs()[:, :2048].median()) > 0.02


def test_evaluation_offset_draws_other_held_out_shapes() -> None:
    from flowlab.shape.train.evaluate import EVAL_SEED, evaluate

    m = build_models(SMOKE)
    kw = dict(eval_shapes=2, eval_steps=1, eval_resolution=4, guidance_sweep=(5.0,), surface_points=32)
    a = evaluate(m["encoder"], m["vae"], m["dit"], m["conditioner"], 1.0, TrainOptions(**kw))
    b = evaluate(m["encoder"], m["vae"], m["dit"], m["conditioner"], 1.0, TrainOptions(**kw, eval_offset=1),
                 vae_only=True)
    assert a["seed"] == EVAL_SEED and b["seed"] == EVAL_SEED + 1
    assert "5.0" in a["image_iou"] and b["image_iou"] == {} and b["flip_max_abs_latent_diff"] is None


@pytest.mark.parametrize("before", [(True, False), (False, True)])
def test_train_and_evaluate_restore_the_callers_tf32_settings(monkeypatch, before) -> None:
    """train() runs with TF32 on and evaluate() with it off on CUDA; both leave the caller's settings as they were."""
    import flowlab.shape.train.evaluate as ev
    import flowlab.shape.train.loop as loop

    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (matmul.allow_tf32, cudnn.allow_tf32)
    seen = {}
    monkeypatch.setattr(loop, "_train", lambda *a, **k: seen.setdefault("train", (matmul.allow_tf32, cudnn.allow_tf32)))

    def failing_eval(*a, **k):
        seen["eval"] = (matmul.allow_tf32, cudnn.allow_tf32)
        raise RuntimeError("evaluation failed")
    monkeypatch.setattr(ev, "_evaluate", failing_eval)
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
