"""torchsci_neuro: the neuro plug-in of torchsci (models and datasets arrive with its own issue)."""


def register(registry) -> None:
    """Entry point of the `torchsci.plugins` group: add this field's models and datasets to `registry`."""
