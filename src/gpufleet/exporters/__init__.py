"""exporters layer of gpufleet (see DESIGN.md)."""
