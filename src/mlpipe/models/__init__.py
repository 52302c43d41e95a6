"""Image classifiers, built by name through :mod:`mlpipe.models.factory`."""
