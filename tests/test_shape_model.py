"""Unit properties of flowlab.shape: guidance batching, time rounding, schedules, decoding, conditioner size."""
from __future__ import annotations

import pytest
import torch

from flowlab.shape.models.dit import DiTConfig, timestep_embedding
from flowlab.shape.pipeline import DiTVelocity, reference_time, shape_schedule
from flowlab.shape.verify.tiny import TINY_DIT, tiny_cond, tiny_pipeline
from flowlab.shape.decode.volume import decode_dense, decode_hierarchical, octree_levels



pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one CPU thread (conftest)


class Recorder(torch.nn.Module):
    """Stands in for the DiT: records its inputs, returns a velocity that depends on cond."""

    def __init__(self, guidance_embed: bool = False) -> None:
        super().__init__()
        self.config = DiTConfig(**{**TINY_DIT.as_dict(), "guidance_embed": guidance_embed})
        self.calls: list[tuple] = []

    @property
    def guidance_embed(self) -> bool:
        return self.config.guidance_embed

    def forward(self, x, t, cond, guidance=None):
        self.calls.append((x.clone(), t.clone(), cond.clone(), None if guidance is None else guidance.clone()))
        return x * 0 + cond.mean(dim=(1, 2))[:, None, None] + 1.0


def test_cfg_runs_one_batch_cond_then_zero_uncond() -> None:
    rec, cond = Recorder(), tiny_cond(0)
    model = DiTVelocity(rec, cond, guidance=5.0)
    x, t = torch.randn(1, 4, 8), torch.tensor([0.25])
    v = model(x, t)
    (xb, tb, cb, g), = rec.calls
    assert xb.shape[0] == 2 and torch.equal(xb[0], xb[1]) and torch.equal(tb[0], tb[1])
    assert torch.equal(cb[0], cond[0]) and not cb[1].any() and g is None
    v_c, v_u = cond.mean() + 1.0, torch.tensor(1.0)
    assert torch.allclose(v, (v_u + 5.0 * (v_c - v_u)).expand_as(v))


@pytest.mark.parametrize("w", [None, -1.0])
def test_no_guidance_is_one_conditional_call(w) -> None:
    rec = Recorder()
    DiTVelocity(rec, tiny_cond(0), guidance=w)(torch.randn(1, 4, 8), torch.tensor([0.5]))
    assert rec.calls[0][0].shape[0] == 1


def test_guidance_distilled_feeds_w_and_runs_batch_one() -> None:
    rec = Recorder(guidance_embed=True)
    DiTVelocity(rec, tiny_cond(0), guidance=3.5)(torch.randn(1, 4, 8).half(), torch.tensor([0.5]))
    x, t, c, g = rec.calls[0]
    assert x.shape[0] == 1 and g.dtype == torch.float16 and g.tolist() == [3.5]


def test_reference_time_rounds_in_the_latents_dtype() -> None:
    t = torch.tensor([1 / 3, 0.5, 0.9183673], dtype=torch.float32)
    r16 = reference_time(t, torch.float16)
    assert r16.dtype == torch.float16
    assert r16[0].item() == torch.tensor(333.3333, dtype=torch.float16).item() / 1000 or abs(r16[0].item() - 1 / 3) < 5e-4
    assert r16[1].item() == 0.5
    assert (r16.float() - t).abs().max() > 0
    assert torch.allclose(reference_time(t, torch.float32), t, atol=1e-7)


def test_exact_time_matters_in_fp16() -> None:
    pipe = tiny_pipeline(0, dtype=torch.float16)
    a = pipe.sample_latents(tiny_cond(0), steps=12, seed=0, exact=True)
    b = pipe.sample_latents(tiny_cond(0), steps=12, seed=0, exact=False)
    assert not torch.equal(a, b)


def test_time_embedding_defaults_are_the_reference_quirk() -> None:
    t = torch.tensor([0.0, 0.37, 1.0])
    e = timestep_embedding(t)
    assert e.shape == (3, 256)
    assert torch.allclose(e, timestep_embedding(t, max_period=1000.0, time_factor=1000.0))
    assert not torch.allclose(e, timestep_embedding(t, max_period=10000.0))
    assert torch.equal(e[0, :128], torch.ones(128)) and torch.equal(e[0, 128:], torch.zeros(128))


def test_schedules() -> None:
    assert shape_schedule(3).tolist() == [0.0, 0.5, 1.0, 1.0]
    assert shape_schedule(3, wasted_last_step=False).tolist() == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    corrected_shift = shape_schedule(4, shift=3.0, wasted_last_step=False)
    assert corrected_shift.shape == (5,) and corrected_shift[-1].item() == 1.0
    assert bool((corrected_shift[1:] > corrected_shift[:-1]).all())
    assert shape_schedule(5, "consistency", pcm_timesteps=100)[-2].item() == pytest.approx(0.7998, abs=1e-4)
    shifted = shape_schedule(5, shift=3.0)
    assert shifted[1] > 0.25 and shifted[-1] == shifted[-2] == 1.0  # the SD3 shift on reversed t: toward data
    from flowlab.errors import FlowlabError

    with pytest.raises(FlowlabError):
        shape_schedule(5, "ddim")


def test_octree_levels() -> None:
    assert octree_levels(384) == [96, 192, 384]
    assert octree_levels(256) == [64, 128, 256]
    assert octree_levels(380) == [95, 190, 380]
    assert octree_levels(50) == [50]


def test_latent_kv_projection_computed_once_per_shape() -> None:
    pipe = tiny_pipeline(0)
    calls = []
    h = pipe.vae.geo_decoder.cross_attn_decoder.attn.c_kv.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        tokens = pipe.vae.decode_latents(torch.randn(1, *pipe.vae.latent_shape))
        decode_dense(pipe.vae.geo_decoder, tokens, 12, chunk_size=100)  # 22 chunks
    h.remove()
    assert len(calls) == 1


def test_hierarchical_evaluates_fewer_points_and_keeps_the_surface() -> None:
    pipe = tiny_pipeline(0)
    with torch.no_grad():
        tokens = pipe.vae.decode_latents(pipe.sample_latents(tiny_cond(0), steps=4, seed=0))
    counts = {"dense": 0, "hier": 0}
    dense = decode_dense(pipe.vae.geo_decoder, tokens, 48, chunk_size=5000,
                         progress=lambda k: counts.__setitem__("dense", counts["dense"] + k))
    hier = decode_hierarchical(pipe.vae.geo_decoder, tokens, 48, chunk_size=5000, min_resolution=24, threshold=0.05,
                               progress=lambda k: counts.__setitem__("hier", counts["hier"] + k))
    assert counts["hier"] < counts["dense"]
    near = dense.abs() < 0.03  # inside the evaluated band (threshold 0.05)
    assert torch.allclose(hier[near], dense[near], atol=1e-5)  # exact where the surface is
    assert ((hier > 0) != (dense > 0)).float().mean() < 1e-3


def test_full_size_dinov2_giant_from_the_released_config() -> None:
    pytest.importorskip("transformers")
    from flowlab.shape.models.conditioner import ImageConditioner, convert_dinov2_keys

    cfg = dict(attention_probs_dropout_prob=0.0, drop_path_rate=0.0, hidden_act="gelu", hidden_dropout_prob=0.0,
               hidden_size=1536, image_size=518, initializer_range=0.02, layer_norm_eps=1e-6, layerscale_value=1.0,
               mlp_ratio=4, model_type="dinov2", num_attention_heads=24, num_channels=3, num_hidden_layers=40,
               patch_size=14, qkv_bias=True, torch_dtype="float32", use_swiglu_ffn=True)
    section = {"target": "hy3dgen.shapegen.models.SingleImageEncoder", "params": {"main_image_encoder": {
        "type": "DinoImageEncoder", "kwargs": {"config": cfg, "image_size": 518, "use_cls_token": True}}}}
    with torch.device("meta"):
        cond = ImageConditioner.from_config(section)
    assert sum(p.numel() for p in cond.parameters()) == 1_136_480_768
    assert cond.num_tokens == 1370
    own = cond.state_dict()
    v4 = convert_dinov2_keys(own, set())  # to transformers 4.x names, as in the release
    back = convert_dinov2_keys(v4, set(own))
    assert {k: tuple(v.shape) for k, v in back.items()} == {k: tuple(v.shape) for k, v in own.items()}
    assert "main_image_encoder.model.encoder.layer.0.mlp.weights_in.weight" in v4
    assert tuple(v4["main_image_encoder.model.encoder.layer.0.mlp.weights_in.weight"].shape) == (8192, 1536)


def test_multiview_views_get_their_view_embedding() -> None:
    pytest.importorskip("transformers")
    from PIL import Image

    from flowlab.shape.models.conditioner import ImageConditioner, multiview_embedding
    from flowlab.shape.verify.tiny import TINY_ENCODER

    pipe = tiny_pipeline(0, with_conditioner=True)
    mv = ImageConditioner.from_config({"params": {"main_image_encoder": {**TINY_ENCODER, "type": "DinoImageEncoderMV"}}})
    mv.load_state_dict(pipe.conditioner.state_dict())
    pipe.conditioner = mv.eval()
    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    img.paste((90, 90, 200, 255), (8, 8, 24, 24))
    single = pipe.conditioner.main_image_encoder(torch.zeros(1, 3, 8, 8))  # shape only
    cond = pipe.encode_views({"back": img, "front": img})
    assert cond.shape == (1, 2 * single.shape[1], 16)
    front, back = cond[0, :1370], cond[0, 1370:]
    emb = multiview_embedding(16, 4)
    assert torch.allclose(back - front, (emb[2] - emb[0]).expand_as(front), atol=1e-5)
