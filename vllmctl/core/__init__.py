"""The vocabulary every package shares: errors and exit codes, setting names, durations,
Kubernetes quantities, models.yaml field shapes, and what a check found. Imports nothing
of vllmctl outside itself."""
