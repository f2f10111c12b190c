"""vllmctl bench: load generation against an OpenAI-compatible endpoint, and its metrics."""
