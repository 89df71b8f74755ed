"""From latents to meshes: volume decoding (dense, coarse-to-fine, fast paths), marching cubes, meshes."""
