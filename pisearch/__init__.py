"""pisearch: neural-architecture search with private-inference (ReLU / protocol) cost as the cost axis."""

__version__ = "0.1.0"


def load(path):
    """The model of an export folder (``pisearch export``), in eval mode on CPU; weights read with safetensors."""
    from pisearch.report import load_export

    return load_export(path)[1]
