"""vllmctl: serve LLMs with vLLM on Kubernetes from one models.yaml."""

__version__ = "0.1.0"
