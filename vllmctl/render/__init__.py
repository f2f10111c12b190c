"""models.yaml + settings -> the chart's values: the values, the plan, the vLLM flags, the
chart-version rules."""
