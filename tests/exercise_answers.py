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

#: exercise number -> correct answers written in other forms than the solution; each must PASS.
RIGHT: dict[int, list[str]] = {
    1: [
        "pred_x0 = x - s * v\npred_x1 = x + (1 - s) * v",
        "pred_x0 = 'x - s*v'\npred_x1 = 'x - s*v + v'",
        "pred_x0 = update.subs({s_next: 0})\npred_x1 = update.subs({s_next: 1})",
        "pred_x0 = sp.expand(update.subs(s_next, 0))\npred_x1 = sp.factor(update.subs(s_next, 1))",
        "pred_x0 = update.xreplace({s_next: sp.Integer(0)})\npred_x1 = x + v - s * v",
        "X, V, Ss = sp.symbols('x v s', positive=True)\npred_x0 = X - Ss * V\npred_x1 = X + (1 - Ss) * V",
    ],
    2: [
        "x_path = t * D + (1 - t) * E\nv_path = D - E\ndata_is = 'pred_x1'",
        "x_path = t * (D - E) + E\nv_path = sp.diff(x_path, t)\ndata_is = 'pred_x1'",
        "x_path = 't*D + (1 - t)*E'\nv_path = 'D - E'\ndata_is = 'pred_x1'",
        "x_path = sp.expand(t * D + (1 - t) * E)\nv_path = -E + D\ndata_is = 'pred_x' + '1'",
        "x_path = E + t * D - t * E\nv_path = x_path.diff(t)\ndata_is = 'pred_x1'",
    ],
    3: [
        "def pred_data_reversed(x, v, t):\n    return x + (1 - t).unsqueeze(-1) * v",
        "def pred_data_reversed(x, v, t):\n    return x + v - t[:, None] * v",
        "def pred_data_reversed(x, v, t):\n    return torch.addcmul(x, (1 - t).view(-1, 1), v)",
        "def pred_data_reversed(x, v, t):\n    return torch.einsum('b,bd->bd', 1 - t, v) + x",
        "def pred_data_reversed(x, v, t):\n    y = x.clone()\n    y += (1 - t[:, None]) * v\n    return y",
    ],
    4: [
        "def flip(model):\n    return lambda x, t: -model(x, 1 - t)",
        "def flip(model):\n    def f(x, t):\n        sigma = 1 - t\n        return -1 * model(x, sigma)\n    return f",
        "def flip(model):\n    return lambda x, t: model(x, 1 - t).neg()",
        "def flip(model):\n    class Flipped:\n        def __call__(self, x, t):\n"
        "            return torch.neg(model(x, torch.ones_like(t) - t))\n    return Flipped()",
        "import functools\ndef _g(m, x, t):\n    return -m(x, 1 - t)\ndef flip(model):\n    return functools.partial(_g, model)",
    ],
    5: [
        "def shift_reversed(t, shift):\n    u = 1 - t\n    return 1 - shift * u / (1 + (shift - 1) * u)",
        "def shift_reversed(t, shift):\n    return t / (t + shift * (1 - t))",
        "def shift_reversed(t, shift):\n    return t / (shift - (shift - 1) * t)",
        "def shift_reversed(t, shift):\n    u = 1 - t\n    return (1 - u) / (1 + (shift - 1) * u)",
        "def shift_reversed(t, shift):\n    s = float(shift)\n    return t.div(t + s * (1 - t))",
    ],
    6: [
        "def fixed_schedule(n_calls):\n    return torch.linspace(0.0, 1.0, steps=n_calls + 1)",
        "def fixed_schedule(n_calls):\n    return torch.arange(n_calls + 1) / n_calls",
        "def fixed_schedule(n_calls):\n    return torch.tensor([k / n_calls for k in range(n_calls + 1)])",
        "def fixed_schedule(n_calls):\n    return 1 - torch.linspace(1, 0, n_calls + 1)",
        "import numpy as np\ndef fixed_schedule(n_calls):\n    return torch.from_numpy(np.linspace(0, 1, n_calls + 1)).float()",
    ],
    7: [
        "def sw2_after(schedule, model, x0, reference):\n"
        "    return sliced_wasserstein(sample(model, x0, schedule, 'reversed'), reference)",
        "def sw2_after(schedule, model, x0, reference):\n    x = x0.clone()\n"
        "    for a, b in zip(schedule[:-1], schedule[1:]):\n        x = x + (b - a) * model(x, a.expand(len(x)))\n"
        "    return sliced_wasserstein(x, reference)",
        "def sw2_after(schedule, model, x0, reference):\n"
        "    return float(sliced_wasserstein(sample(model, x0, schedule, REVERSED), reference))",
        "def sw2_after(schedule, model, x0, reference):\n    samples = sample(model, x0.clone(), schedule.clone(), REVERSED)\n"
        "    d = sliced_wasserstein(samples, reference)\n    return d",
        "import flowlab.metrics as M\ndef sw2_after(schedule, model, x0, reference):\n"
        "    return M.sliced_wasserstein(sample(model, x0, schedule, REVERSED), reference, n_projections=256)",
    ],
    8: [
        "def velocity_to_noise(x, v, t):\n    tt = t.unsqueeze(1)\n    return (x - tt * v) / (1 + tt * tt)",
        "def velocity_to_noise(x, v, t):\n    tt = t[:, None]\n    return x / (1 + tt**2) - tt * v / (1 + tt**2)",
        "def velocity_to_noise(x, v, t):\n    tt = t.view(-1, 1)\n    det = -(1 + tt**2)\n    return (tt * v - x) / det",
        "import sympy as sp\nT, X, V, Dd, Ee = sp.symbols('T X V Dd Ee')\n"
        "_sol = sp.solve([T * Dd + (1 - T**2) * Ee - X, Dd - 2 * T * Ee - V], [Dd, Ee])\n"
        "_f = sp.lambdify((X, V, T), _sol[Ee])\n"
        "def velocity_to_noise(x, v, t):\n    return _f(x, v, t[:, None])",
        "def velocity_to_noise(x, v, t):\n    tt = t[:, None]\n    return torch.div(x - tt * v, tt.pow(2) + 1)",
    ],
    9: [
        "def velocity_to_score(x, v, t):\n    tt = t[:, None]\n    return -(x - tt * v) / ((1 + tt**2) * (1 - tt**2))",
        "def velocity_to_score(x, v, t):\n    tt = t[:, None]\n    return (tt * v - x) / (1 - tt**4)",
        "def velocity_to_score(x, v, t):\n    tt = t.unsqueeze(-1)\n    e = (x - tt * v) / (1 + tt**2)\n"
        "    return -e / (1 - tt) / (1 + tt)",
        "def velocity_to_score(x, v, t):\n    tt = t[:, None]\n    alpha, beta = tt, 1 - tt**2\n"
        "    e = (x - tt * v) / (1 + tt**2)\n    d = (x - beta * e) / alpha\n    return -(x - alpha * d) / beta**2",
        "def _noise(x, v, t):\n    return (x - t[:, None] * v) / (1 + t[:, None]**2)\n"
        "def velocity_to_score(x, v, t):\n    return -_noise(x, v, t) / (1 - t[:, None]**2)",
    ],
    10: [
        "def guided_velocity(x, v, t, delta):\n    return v + delta / (1 - t).unsqueeze(1)",
        "def guided_velocity(x, v, t, delta):\n    tt = t[:, None]\n    d_hat = x + (1 - tt) * v + delta\n"
        "    return (d_hat - x) / (1 - tt)",
        "def guided_velocity(x, v, t, delta):\n    return torch.addcdiv(v, delta, (1 - t)[:, None])",
        "def guided_velocity(x, v, t, delta):\n    tt = t.view(-1, 1)\n    return (v * (1 - tt) + delta) / (1 - tt)",
        "def guided_velocity(x, v, t, delta):\n    return v + delta * (1 / (1 - t[:, None]))",
    ],
    11: [
        "answers = {'direction': 'increasing', 'data_at': 1, 'wasted_calls': 1, 'shift': 2}\n"
        "def mystery_pred_data(x, v, timestep):\n    return x + (1 - timestep[:, None] / 1000.0) * v",
        "from flowlab.exercises import MysteryScheduler\nsch = MysteryScheduler()\nsch.set_timesteps(10)\n"
        "answers = dict(direction='increasing', data_at=sch.sigmas[-1], wasted_calls=1, shift=2.0)\n"
        "def mystery_pred_data(x, v, timestep):\n    t = timestep.unsqueeze(1) * 1e-3\n    return x + v - t * v",
        "answers = dict(direction='increasing', data_at=1.0, wasted_calls=torch.tensor(1), shift=2.0)\n"
        "def mystery_pred_data(x, v, timestep):\n    return x + ((1000 - timestep) / 1000)[:, None] * v",
        "answers = dict(direction='increasing', data_at=1.0, wasted_calls=1, shift=2.02)\n"
        "def mystery_pred_data(x, v, timestep):\n    return torch.addcmul(x, (1 - timestep / 1000).view(-1, 1), v)",
        "answers = dict(direction='increasing', data_at=1.0, wasted_calls=1.0, shift=2)\n"
        "def mystery_pred_data(x, v, timestep):\n    return x + v * (1 - timestep.reshape(-1, 1) / 1e3)",
    ],
    12: [
        "def sample_hunyuan(model, x, n_steps):\n    ts = torch.linspace(0, 1, n_steps + 1, dtype=x.dtype)\n"
        "    for i in range(n_steps):\n        x = x + (ts[i + 1] - ts[i]) * model(x, ts[i].repeat(x.shape[0]))\n"
        "    return x",
        "def sample_hunyuan(model, x, n_steps):\n    dt = 1.0 / n_steps\n    for k in range(n_steps):\n"
        "        t = torch.full((x.shape[0],), k * dt, dtype=x.dtype)\n        x = x + dt * model(x, t)\n    return x",
        "def sample_hunyuan(model, x, n_steps):\n    y = x.clone()\n    ts = torch.linspace(0, 1, n_steps + 1, dtype=x.dtype)\n"
        "    for t0, t1 in zip(ts, ts[1:]):\n        y += (t1 - t0) * model(y, t0 * torch.ones(len(y), dtype=y.dtype))\n"
        "    return y",
        "def sample_hunyuan(model, x, n_steps):\n    for k in range(n_steps):\n"
        "        t = torch.tensor(k / n_steps, dtype=x.dtype).expand(x.shape[0])\n        x = x + model(x, t) / n_steps\n"
        "    return x",
        "def sample_hunyuan(model, x, n_steps):\n    sig = torch.linspace(1, 0, n_steps + 1, dtype=x.dtype)\n"
        "    for s, s2 in zip(sig[:-1], sig[1:]):\n        x = x - (s2 - s) * model(x, (1 - s).expand(x.shape[0]))\n"
        "    return x",
    ],
    13: [
        "def hunyuan_time(t):\n    return (t * 1000).half() / 1000",
        "def hunyuan_time(t):\n    ts = (1000 * t).to(torch.float16)\n    return ts / torch.tensor(1000, dtype=torch.float16)",
        "def hunyuan_time(t):\n    return torch.div((t * 1000).to(dtype=torch.float16), 1000)",
        "def hunyuan_time(t):\n    T = t.mul(1000).half()\n    return T / 1000.0",
        "def hunyuan_time(t):\n    return (t * 1000.0).to(torch.half).div(1000)",
    ],
    14: [
        "def hunyuan_embedding(t, dim):\n    half = dim // 2\n    i = torch.arange(half, dtype=torch.float32)\n"
        "    f = 1000.0 ** (-i / half)\n    a = 1000 * t[:, None] * f[None, :]\n    return torch.cat([a.cos(), a.sin()], dim=1)",
        "def hunyuan_embedding(t, dim):\n"
        "    freqs = torch.exp(-math.log(1000) * torch.arange(0, dim // 2).float() / (dim // 2))\n"
        "    args = torch.outer(t * 1000, freqs)\n    return torch.cat((torch.cos(args), torch.sin(args)), -1)",
        "def hunyuan_embedding(t, dim):\n    half = dim // 2\n"
        "    f = torch.logspace(0, -3 * (half - 1) / half, half, base=10.0)\n    a = (1000 * t)[:, None] * f\n"
        "    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)",
        "def hunyuan_embedding(t, dim):\n    half = dim // 2\n"
        "    f = torch.exp(-math.log(1000.0) * torch.arange(half) / half)\n    a = 1000 * t[:, None] * f\n"
        "    out = torch.empty(len(t), dim)\n    out[:, :half] = torch.cos(a)\n    out[:, half:] = torch.sin(a)\n"
        "    return out",
        "import numpy as np\ndef hunyuan_embedding(t, dim):\n    half = dim // 2\n"
        "    f = np.exp(-np.log(1000.0) * np.arange(half) / half)\n    a = 1000 * t.double().numpy()[:, None] * f[None]\n"
        "    return torch.from_numpy(np.concatenate([np.cos(a), np.sin(a)], axis=1)).float()",
    ],
}

# wrong answers found by working through the exercises (issue 18): each must be rejected, with the hint named
WRONG[3] += [
    ("def pred_data_reversed(x, v, t):\n    return x.add_((1 - t[:, None]) * v)", "wrong", "changed its argument `x`"),
    ("def pred_data_reversed(x, v, t):\n    return (x + (1 - t[:, None]) * v).float()", "wrong", "returned float32"),
]
WRONG[4] += [
    ("def flip(model):\n    return lambda x, t: model(-x, 1 - t)", "wrong", "mirrored the position x"),
    ("from flowlab.sampling import flip as f\ndef flip(model):\n    return f(model)", "wrong",
     "which is what this exercise asks you to write"),
]
WRONG[5] += [
    ("def shift_reversed(t, shift):\n    u = 1 - t\n    return 1 - (1 / shift) * u / (1 + (1 / shift - 1) * u)", "wrong",
     "to the reversed t unchanged"),  # 1 / shift on the noise level is the SD3 formula on t, the same mistake
    ("def shift_reversed(t, shift):\n    return 1 - shift * t / (1 + (shift - 1) * t)", "wrong", "you returned 1 - SD3(t)"),
]
WRONG[8] += [
    ("def velocity_to_noise(x, v, t):\n    tt = t[:, None]\n    return -(x - tt * v) / (1 + tt**2)", "wrong",
     "the sign is flipped"),
    ("def velocity_to_noise(x, v, t):\n    tt = t[:, None]\n    return ((x - tt * v) / (1 + tt**2)).float()", "wrong",
     "returned float32"),
]
WRONG[9] += [
    ("def velocity_to_score(x, v, t):\n    tt = t[:, None]\n    return -(x - tt * v) / (1 + tt**2) / (1 - tt)", "wrong",
     "you divided by 1 - t"),
    ("def velocity_to_score(x, v, t):\n    tt = t[:, None]\n    return (x - tt * v) / (1 + tt**2) / (1 - tt**2)", "wrong",
     "the sign"),
]
WRONG[10] += [
    ("def guided_velocity(x, v, t, delta):\n    return v + delta / t[:, None]", "wrong", "you divided by t"),
    ("def guided_velocity(x, v, t, delta):\n    v += delta / (1 - t[:, None])\n    return v", "wrong",
     "changed its argument `v`"),
]
WRONG[12] += [
    ("def sample_hunyuan(model, x, n_steps):\n    ts = torch.linspace(0, 1, n_steps, dtype=x.dtype)\n"
     "    for t, t_next in zip(ts[:-1], ts[1:]):\n        x = x + (t_next - t) * model(x, t.expand(x.shape[0]))\n"
     "    return x", "wrong", "made 7 model calls for n_steps = 8"),
    ("def sample_hunyuan(model, x, n_steps):\n    ts = torch.linspace(0, 1, n_steps + 1, dtype=x.dtype)\n"
     "    for t, t_next in zip(ts[:-1], ts[1:]):\n        x += (t_next - t) * model(x, t.expand(x.shape[0]))\n"
     "    return x", "wrong", "changed its argument `x`"),
]
WRONG[13] += [
    ("def hunyuan_time(t):\n    return (t * 1000).round() / 1000", "wrong", "rounding 1000 t to an integer"),
]
WRONG[14] += [
    ("def hunyuan_embedding(t, dim):\n    half = dim // 2\n"
     "    f = torch.exp(-math.log(1000.0) * torch.arange(half) / half)\n"
     "    a = t[:, None] * f[None]\n    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)", "wrong",
     "the time is scaled by 1000"),
]
