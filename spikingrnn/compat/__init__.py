"""Compatibility layers: SpikingJelly drop-in."""
