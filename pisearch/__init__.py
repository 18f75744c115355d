"""pisearch: neural-architecture search with private-inference (ReLU / protocol) cost as the cost axis."""

__version__ = "0.1.0"
