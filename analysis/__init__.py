"""Aggregation of run records, statistics (rliable), figures and the claims report."""
