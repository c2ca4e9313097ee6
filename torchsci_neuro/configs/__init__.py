"""Hydra config groups of the neuro plug-in (experiment/neuro/...), put on the search path by torchsci (docs/plugins.md)."""
