"""Hunyuan3D-2's shape model (image -> 3D mesh) inside flowlab, driven in either timestep convention.

Modules:

* :mod:`~flowlab.shape.models.dit`: the DiT denoiser (all released variants; reversed convention, v = D - E);
* :mod:`~flowlab.shape.models.vae`: the ShapeVAE decoder and its geometry (occupancy) decoder;
* :mod:`~flowlab.shape.decode.volume`: dense (chunked) and coarse-to-fine volume decoding;
* :mod:`~flowlab.shape.decode.mesh`: marching cubes with the reference's vertex mapping, mesh export;
* :mod:`~flowlab.shape.models.conditioner`: image preprocessing and DINOv2 (transformers);
* :mod:`~flowlab.shape.load.checkpoint`: official checkpoint folders, strict loading;
* :mod:`~flowlab.shape.pipeline`: sampling through :func:`flowlab.sampling.sample`, decoding;
* :mod:`~flowlab.shape.verify.tiny`: small random-weight models for tests, notebooks and smoke runs.
* :mod:`~flowlab.shape.load.mini`: the trained mini model shipped in ``weights/mini`` (:func:`~flowlab.shape.load.mini.load_mini`);
* :mod:`~flowlab.shape.data.primitives`, :mod:`~flowlab.shape.data.render`: procedural SDF shapes and their renders (its data);
* :mod:`~flowlab.shape.models.encoder`, :mod:`~flowlab.shape.models.image_encoder`, :mod:`~flowlab.shape.train.loop`: the VAE
  encoder, the patch image encoder and ``flowlab train-shape``.

Write-up of the architecture and its quirks: notebooks/04_hunyuan3d2_shape_model.ipynb.
"""
from .models.dit import DIT_CONFIGS, DiTConfig, ShapeDiT, timestep_embedding
from .decode.mesh import Mesh, export_mesh, marching_cubes
from .pipeline import DiTVelocity, ShapePipeline, reference_time, shape_schedule
from .load.folder import load_pipeline
from .models.vae import VAE_CONFIGS, ShapeVAE, VAEConfig
from .decode.volume import decode_dense, decode_hierarchical

__all__ = [
    "DIT_CONFIGS", "DiTConfig", "ShapeDiT", "timestep_embedding",
    "VAE_CONFIGS", "VAEConfig", "ShapeVAE",
    "decode_dense", "decode_hierarchical",
    "Mesh", "marching_cubes", "export_mesh",
    "DiTVelocity", "ShapePipeline", "load_pipeline", "reference_time", "shape_schedule",
]
