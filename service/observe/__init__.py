"""What the service tells its operators: Prometheus metrics, JSON log lines, stage timing.

Nothing here imports the rest of the service, so any part of it may report through these.
"""
