"""Typical wrong answers to the exercises, as a student would type them into the *your turn* cell,
with a piece of the hint each must produce. Shared by tests/test_exercises.py (checks called
directly) and tests/test_exercises_student.py (the student notebooks executed with nbclient)."""

#: exercise number -> [(cell source, expected status, text the message must contain), ...]
WRONG: dict[int, list[tuple[str, str, str]]] = {
    1: [
        ("pred_x0 = update.subs(s_next, 1)\npred_x1 = update.subs(s_next, 0)", "wrong", "you swapped them"),
        ("pred_x0 = x + s * v\npred_x1 = x + (1 - s) * v", "wrong", "sign of the step flipped"),
        ("pred_x0 = update\npred_x1 = update.subs(s_next, 1)", "wrong", "still contains s_next"),
    ],
    2: [
        ("x_path = t * D + (1 - t) * E\nv_path = sp.diff(x_path, t)\ndata_is = 'pred_x0'", "wrong",
         "mistake of Hunyuan3D-2 issue #124"),
        ("x_path = (1 - t) * D + t * E\nv_path = sp.diff(x_path, t)\ndata_is = 'pred_x1'", "wrong",
         "is the CONVENTIONAL interpolant"),
        ("x_path = t * D + (1 - t) * E\nv_path = E - D\ndata_is = 'pred_x1'", "wrong", "is the conventional target"),
    ],
    3: [
        ("def pred_data_reversed(x, v, t):\n    return x - t[:, None] * v", "wrong",
         "returns x - t v: that is the NOISE in this convention"),
        ("def pred_data_reversed(x, v, t):\n    return x + (1 - t) * v", "error", "Hint: a shape mismatch"),
        ("def pred_data_reversed(x, v, t):\n    return x - (1 - t[:, None]) * v", "wrong", "without flipping the velocity"),
    ],
    4: [
        ("def flip(model):\n    return lambda x, t: model(x, 1 - t)", "wrong",
         "you flipped the time but not the velocity"),
        ("def flip(model):\n    return lambda x, t: -model(x, t)", "wrong", "you negated the velocity but kept the time"),
    ],
    5: [
        ("def shift_reversed(t, shift):\n    return shift * t / (1 + (shift - 1) * t)", "wrong",
         "to the reversed t unchanged"),
        ("def shift_reversed(t, shift):\n    u = 1 - t\n    return shift * u / (1 + (shift - 1) * u)", "wrong",
         "convert back to the reversed time"),
    ],
    6: [
        ("def fixed_schedule(n_calls):\n    return torch.cat([torch.linspace(0, 1, n_calls), torch.ones(1)])", "wrong",
         "goes 1.0 -> 1.0 (dt = 0)"),
        ("def fixed_schedule(n_calls):\n    return torch.linspace(0, 1, n_calls)", "wrong", "N calls need N + 1 times"),
        ("def fixed_schedule(n_calls):\n    return torch.linspace(1, 0, n_calls + 1)", "wrong",
         "that is sigma, the conventional direction"),
        ("def fixed_schedule(n_calls):\n    return torch.cat([torch.linspace(0, 1, n_calls), torch.zeros(1)])", "wrong",
         "you appended 0.0"),
    ],
    7: [
        ("def sw2_after(schedule, model, x0, reference):\n    return sliced_wasserstein(x0, reference)", "wrong",
         "distance of the starting noise"),
        ("def sw2_after(schedule, model, x0, reference):\n"
         "    return sliced_wasserstein(sample(model, x0, schedule, 'conventional'), reference)", "error",
         "Hint: sample in the reversed convention"),
    ],
    8: [
        ("def velocity_to_noise(x, v, t):\n    return x - t[:, None] * v", "wrong", "the Euler jump to t = 0"),
        ("def velocity_to_noise(x, v, t):\n    tt = t[:, None]\n    return (x - tt * v) / (1 - tt**2)", "wrong",
         "divide by the determinant"),
    ],
    9: [
        ("def velocity_to_score(x, v, t):\n    tt = t[:, None]\n    return -(x - tt * v) / (1 + tt**2)", "wrong",
         "you returned -E"),
        ("def velocity_to_score(x, v, t):\n    tt = t[:, None]\n    return -(x - tt * v) / (1 - tt)", "wrong",
         "score of the straight reversed path"),
    ],
    10: [
        ("def guided_velocity(x, v, t, delta):\n    return v - delta / t[:, None]", "wrong", "the #124 mistake"),
        ("def guided_velocity(x, v, t, delta):\n    return v + delta", "wrong", "moves by (1 - t) delta"),
    ],
    11: [
        ("answers = dict(direction='increasing', data_at=1.0, wasted_calls=1, shift=2.0)\n"
         "def mystery_pred_data(x, v, timestep):\n    return x + (1 - timestep[:, None]) * v", "wrong",
         "divide by 1000 first"),
        ("answers = dict(direction='decreasing', data_at=1.0, wasted_calls=1, shift=2.0)\n"
         "def mystery_pred_data(x, v, timestep):\n    return x", "wrong", "read 'direction of time'"),
        ("answers = dict(direction='increasing', data_at=0, wasted_calls=1, shift=2.0)\n"
         "def mystery_pred_data(x, v, timestep):\n    return x", "wrong", "the LAST time in the card"),
    ],
    12: [
        ("def sample_hunyuan(model, x, n_steps):\n"
         "    sigmas = torch.linspace(1, 0, n_steps + 1, dtype=x.dtype)\n"
         "    for s, s_next in zip(sigmas[:-1], sigmas[1:]):\n"
         "        x = x + (s_next - s) * model(x, s.expand(x.shape[0]))\n"
         "    return x", "wrong", "you kept diffusers' sigma running 1 -> 0"),
        ("def sample_hunyuan(model, x, n_steps):\n"
         "    ts = torch.cat([torch.linspace(0, 1, n_steps, dtype=x.dtype), torch.ones(1, dtype=x.dtype)])\n"
         "    for t, t_next in zip(ts[:-1], ts[1:]):\n"
         "        x = x + (t_next - t) * model(x, t.expand(x.shape[0]))\n"
         "    return x", "wrong", "wasted last step"),
        ("def sample_hunyuan(model, x, n_steps):\n"
         "    ts = torch.linspace(0, 1, n_steps + 1, dtype=x.dtype)\n"
         "    for t, t_next in zip(ts[:-1], ts[1:]):\n"
         "        x = x + (t_next - t) * model(x, 1 - t.expand(x.shape[0]))\n"
         "    return x", "wrong", "you call the model at 1 - t"),
    ],
    13: [
        ("def hunyuan_time(t):\n    return t.half()", "wrong", "you rounded t itself to fp16"),
        ("def hunyuan_time(t):\n    return (t * 1000).half().float() / 1000", "wrong", "divided by 1000 in float32"),
        ("def hunyuan_time(t):\n    return t", "wrong", "no rounding"),
    ],
    14: [
        ("def hunyuan_embedding(t, dim):\n    half = dim // 2\n"
         "    f = torch.exp(-math.log(10000.0) * torch.arange(half) / half)\n"
         "    a = (1000 * t)[:, None] * f[None]\n    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)", "wrong",
         "max_period 10000 is the usual"),
        ("def hunyuan_embedding(t, dim):\n    half = dim // 2\n"
         "    f = torch.exp(-math.log(1000.0) * torch.arange(half) / half)\n"
         "    a = (1000 * t)[:, None] * f[None]\n    return torch.cat([torch.sin(a), torch.cos(a)], dim=-1)", "wrong",
         "cosines first"),
    ],
}
