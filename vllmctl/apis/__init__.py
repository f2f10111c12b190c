"""Clients of HTTP APIs: the HuggingFace Hub and the OpenAI-compatible API."""
