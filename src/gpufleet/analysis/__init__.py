"""analysis layer of gpufleet (see DESIGN.md)."""
