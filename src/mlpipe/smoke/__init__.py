"""Test small first: the whole study's DAG in miniature, in folders of its own, before its GPU-hours are spent
(``make smoke``): every rule, every distinct model, a few hundred samples, one epoch, one seed, and one training
step of each model at the study's largest batch size, which says whether it fits in the GPU's memory."""
