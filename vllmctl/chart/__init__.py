"""The vllm-stack chart: its facts, the version rendered for, the values, the plan."""
