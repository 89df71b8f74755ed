"""Fixtures of the fault suite: the real CLI in a subprocess, and real (tiny) files to feed it.

Every case here is a bad input or a fault a new user can cause; the suite checks that each one ends
with flowlab's own message (exit 1, no traceback) or a FlowlabError from the API, and that nothing is
lost or half-written. See tests/faults/README.md for how to add cases for a new command.
"""
from __future__ import annotations

from pathlib import Path

import pytest

@pytest.fixture(scope="session")
def files(tmp_path_factory) -> dict[str, Path]:
    """Real inputs for the CLI cases: a tiny checkpoint folder, embeddings good and bad, a NaN checkpoint,
    a config with bad values, a folder, an existing output file. Keys are used as ``{key}`` in the cases."""
    pytest.importorskip("yaml")
    import torch
    import yaml

    from flowlab.shape.load.embedding import save_embedding
    from flowlab.shape.verify.tiny import tiny_cond, tiny_pipeline, write_checkpoint_folder

    root = tmp_path_factory.mktemp("faults")
    pipe = tiny_pipeline(0)
    write_checkpoint_folder(pipe, root / "model")
    save_embedding(tiny_cond(0), root / "cond.safetensors")
    from safetensors.torch import save_file

    c = tiny_cond(0)
    save_file({"cond": c.expand(3, -1, -1).contiguous()}, str(root / "cond3.safetensors"))
    save_file({"cond": torch.zeros(1, 0, c.shape[-1])}, str(root / "cond_empty.safetensors"))
    save_file({"cond": torch.full_like(c, float("nan"))}, str(root / "cond_nan.safetensors"))
    # the same model with all-NaN DiT weights
    nan_pipe = tiny_pipeline(0)
    with torch.no_grad():
        for p in nan_pipe.dit.parameters():
            p.fill_(float("nan"))
    write_checkpoint_folder(nan_pipe, root / "model_nan")
    # config.yaml with a wrongly typed and a nonsense value
    for name, key, value in (("model_typed", "hidden_size", "thirty-two"), ("model_depth", "depth", -1)):
        write_checkpoint_folder(pipe, root / name)
        cfg = yaml.safe_load((root / name / "config.yaml").read_text())
        cfg["model"]["params"][key] = value
        (root / name / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (root / "a_folder").mkdir()
    (root / "random.pt").write_bytes(bytes(range(256)) * 40)
    return {"model": root / "model", "cond": root / "cond.safetensors", "cond3": root / "cond3.safetensors",
            "cond_empty": root / "cond_empty.safetensors", "cond_nan": root / "cond_nan.safetensors",
            "model_nan": root / "model_nan", "model_typed": root / "model_typed", "model_depth": root / "model_depth",
            "folder": root / "a_folder", "random_pt": root / "random.pt", "root": root}
