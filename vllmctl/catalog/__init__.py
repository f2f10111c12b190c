"""The models catalog (models.yaml): parsing, validation, byte-exact edits and safe writes.

Kept empty on purpose: importing any catalog module runs this file, and the CLI imports
`catalog.constants` at start-up, so nothing heavy may load here. See `store` for the API.
"""
