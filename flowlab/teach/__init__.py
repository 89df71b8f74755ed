"""The teaching layer: figures, the verification tables, the tour and its site."""
