"""The only code that touches hardware or the OS. Each collector yields ``gpufleet.model`` records.

Importable with nothing but the standard library, nvidia-ml-py and psutil installed.
"""
