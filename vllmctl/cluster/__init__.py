"""The adapters to the outside world: the external-program runner (`tools`), helm, kubectl,
the Kubernetes API client (`kube`) and the router port-forward (`tunnel`). Only this package
starts processes or imports the kubernetes client (tests/test_imports.py checks it).

Empty on purpose: importing one adapter must not load the others (`--help` stays instant).
"""
