"""Configuration: the frozen model, the YAML loader and the validation rules."""
