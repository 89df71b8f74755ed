"""The Hunyuan3D-2 shape model's networks: DiT, ShapeVAE, its encoder, the image encoders."""
