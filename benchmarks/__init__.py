"""Throughput and memory harness (`tessera bench`)."""
