"""Chart features: one module each, listed in order by registry.py."""
