"""yedge: YolactEdge from a PyTorch checkpoint to measured accuracy and speed, on Ascend or anywhere."""

__version__ = "0.1.0"
