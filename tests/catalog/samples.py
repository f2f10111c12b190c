"""models.yaml texts in the layouts operators actually write, shared by the round-trip tests."""

RICH = """\
# Production models. Owner: platform team.
# Keep entries sorted by size.

- name: llama3        # the default chat model
  modelURL: "meta-llama/Llama-3.1-8B-Instruct"
  replicaCount: 2
  requestCPU: 6
  requestMemory: 16Gi
  requestGPU: 1
  pvcStorage: 50Gi
  vllmConfig: {maxModelLen: 8192, dtype: bfloat16}   # flow style on purpose

  # GPU nodes are tainted
- name: 'qwen-coder'
  modelURL: Qwen/Qwen2.5-Coder-7B-Instruct
  requestGPU: 2
  tolerations:
    - key: nvidia.com/gpu
      operator: Exists
      effect: NoSchedule
  chatTemplate: |
    {% for m in messages %}{{ m.content }}{% endfor %}

  vllmConfig:
    # long context for code
    maxModelLen: 32768
    tensorParallelSize: 2

# - name: retired
#   modelURL: org/retired

- name: embed
  modelURL: BAAI/bge-m3
  requestGPU: 0
  env:
    - {name: VLLM_LOGGING_LEVEL, value: DEBUG}
# trailing comment after the last entry
#   with an indented second line
"""

INDENTED = """\
# dashes indented two, keys four past the dash, nested mappings by four
    - name: first
      modelURL: org/first
      vllmConfig:
          maxModelLen: 4096
    - name: second
      modelURL: org/second
"""

COMMENTS_ONLY = """\
# Nothing here yet.
#
# - name: example
#   modelURL: org/example
"""

NO_FINAL_NEWLINE = "- name: solo\n  modelURL: org/solo  # no newline at the end"

CRLF = "# windows\r\n- name: win\r\n  modelURL: org/win\r\n\r\n# end\r\n"

BOM = "\ufeff# with a byte order mark\n- name: bom\n  modelURL: org/bom\n"

UNICODE_COMMENTS = "# Modèle — 模型 🚀\n- name: uni  # ünïcödé\n  modelURL: org/uni\n# ‘quotes’ “here”\n"  # noqa: RUF001

EMPTY = ""

ALL = {
    "rich": RICH,
    "indented": INDENTED,
    "comments-only": COMMENTS_ONLY,
    "no-final-newline": NO_FINAL_NEWLINE,
    "crlf": CRLF,
    "bom": BOM,
    "unicode-comments": UNICODE_COMMENTS,
    "empty": EMPTY,
}
