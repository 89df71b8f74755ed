"""Training and demo data: procedural SDF shapes and their renders."""
