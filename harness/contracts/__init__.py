"""Types shared across layers (adapters and probes) without either importing the other."""
