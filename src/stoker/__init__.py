"""stoker: PyTorch-style data loading that keeps training jobs fed."""
