"""Facts about models.yaml entries that the CLI needs at start-up (so: no imports here)."""

# The old tool's defaults for a new entry.
DEFAULTS = {
    "replicaCount": 1,
    "requestCPU": 6,
    "requestMemory": "16Gi",
    "requestGPU": 1,
    "pvcStorage": "50Gi",
}

DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")  # vLLM's --dtype choices
