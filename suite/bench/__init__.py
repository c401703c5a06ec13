"""Benchmark commands (``m3po bench NAME``): each prints one JSON line of measured figures."""
