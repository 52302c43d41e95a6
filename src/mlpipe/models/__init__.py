"""Image classifiers, built by name through :mod:`mlpipe.models.registry`."""
