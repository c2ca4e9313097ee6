"""Hydra config groups of the chem plug-in (experiment/chem/...), put on the search path by torchsci (docs/plugins.md)."""
