"""A user's port of Hunyuan3D-2's sampler, in two versions, for `flowlab check` and the pytest plugin.

The model is called like Hunyuan3D-2's DiT: model(x, t, cond), reversed convention (t runs 0 -> 1, the data
is at t = 1), t in [0, 1].
"""
import torch


def sample(model, x, steps):
    """The fixed port: N + 1 times, N calls, N effective steps, float32 time."""
    ts = torch.linspace(0.0, 1.0, steps + 1)
    cond = {"main": torch.zeros(x.shape[0], 4, 8)}
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, t.expand(x.shape[0]), cond)
    return x


def sample_as_released(model, x, steps):
    """hy3dgen 2.0.2's schedule: linspace(0, 1, N) with 1.0 appended -> a wasted last call."""
    ts = torch.cat([torch.linspace(0.0, 1.0, steps), torch.ones(1)])
    cond = {"main": torch.zeros(x.shape[0], 4, 8)}
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model(x, t.expand(x.shape[0]), cond)
    return x


def pred_data(x, v, t):
    """The data prediction in the reversed convention (NOT x - t v: that is the noise, Hunyuan3D-2 #124)."""
    return x + (1 - t) * v
