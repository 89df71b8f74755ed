"""Training the mini model (``flowlab train-shape``): the loop in :mod:`~flowlab.shape.train.loop.loop`."""
