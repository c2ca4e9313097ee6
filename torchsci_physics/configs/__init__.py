"""Hydra config groups of the physics plug-in (experiment/physics/...), put on the search path by torchsci (docs/plugins.md)."""
