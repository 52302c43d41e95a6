"""The GPU, watched: what a train job's GPUs did while it trained, and why they waited.

``nvml.py`` is the one module that calls NVML; ``sampler.py`` reads the job's GPUs in a background thread;
``data_wait.py`` times the host's work on batches apart from the steps; ``watch.py`` is what the training loop
opens; ``figures.py`` turns per-epoch rows into a run's figures and its flag.
"""
