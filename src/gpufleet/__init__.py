"""gpufleet: watch GPUs and the machines around them, keep their history, explain their use."""

__version__ = "0.1.0"
