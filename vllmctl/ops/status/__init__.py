"""What `vllmctl status` and `vllmctl endpoints` report, in parts that import one way:

- `report`: the report's dataclasses (`as_json()` for `-o json`);
- `objects`: what a Deployment's or Service's object says (containers, GPUs, served ids,
  image tag, DNS name), and ages and numbers;
- `diagnose`: why a pod or a rollout is not working, in plain words (`pod_reason` for
  commands that wait for pods), and secret redaction; a feature's objects (KEDA's) are
  explained by the feature, through its `model_status` hook;
- `cluster`: the reads (one list per kind, each feature's `read_status`, log tails of
  crashing pods, helm's release, the router's model list);
- `compare`: models.yaml against the release (and the plan check `vllmctl plan` makes);
- `reader`: `StatusReader`, which runs the reads in threads, and `build_report`;
- `endpoints`: the Services, base URL, external access and client examples.

Import from the part itself (`from vllmctl.ops.status.reader import StatusReader`): this file
imports none of them, so the parts never import their package back.
"""
