"""KV-cache monitoring for vLLM and LMCache: scrape their Prometheus metrics, compute hit
rates and KV pressure from counters, recommend LMCache settings and write its config.

Layers: :mod:`.names` (the metric-name table across versions), :mod:`.exposition` (fetch and
parse), :mod:`.rates` (counter and histogram deltas), :mod:`.readings` (a window's summary),
:mod:`.recommend` (settings with reasoning), :mod:`.config_file` (LMCache YAML and vLLM's
``kv_transfer_config``), :mod:`.poller` (the agent's scraping thread).
"""
