"""Model folders: checkpoint reading, config.yaml checks, load_pipeline, the shipped mini model, cached embeddings."""
