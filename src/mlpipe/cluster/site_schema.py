"""What a site file holds, as a JSON schema (``profiles/slurm-template/site.yaml`` documents each key).

Checked with :func:`mlpipe.config.validate_config`, which also fills in the defaults, so a mistake in a
site file stops Snakemake with one line naming the key.
"""

_NAME = {"type": "string", "minLength": 1}
_QUEUE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["cpu", "gpu", "max_runtime"],
    "properties": {"cpu": _NAME, "gpu": _NAME, "max_runtime": {"type": "integer", "minimum": 1}},
}
_CLUSTER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["cores_per_gpu", "gpu_partitions", "queues"],
    "properties": {
        "description": {"type": "string"},
        "gpu": {  # the cluster's GPUs: which PyTorch builds have kernels for them
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "model": _NAME,
                "compute_capability": {"type": "string", "pattern": r"^[0-9]+\.[0-9]$"},
            },
        },
        "cores_per_gpu": {"type": "integer", "minimum": 1},
        "gpu_partitions": {"type": "array", "items": _NAME, "minItems": 1},
        "queues": {"type": "object", "required": ["normal"], "additionalProperties": _QUEUE},
    },
}
SITE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "environment", "scratch_root", "scratch_purge_days", "default_cluster", "clusters"],
    "properties": {
        "name": _NAME,
        "environment": {
            "type": "object",
            "additionalProperties": False,
            "required": ["account", "cluster", "queue", "scratch", "cpu_partition", "gpu_partition"],
            "properties": {
                key: _NAME for key in ("account", "cluster", "queue", "scratch", "cpu_partition", "gpu_partition")
            },
        },
        "account_example": {"type": "string", "default": ""},
        "scratch_root": _NAME,
        "scratch_purge_days": {"type": "integer", "minimum": 1},
        "modules": {"type": "array", "items": _NAME, "default": []},
        "default_cluster": _NAME,
        "retired_clusters": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
        "clusters": {"type": "object", "minProperties": 1, "additionalProperties": _CLUSTER},
    },
}
