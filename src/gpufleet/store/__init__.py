"""store layer of gpufleet (see DESIGN.md)."""
