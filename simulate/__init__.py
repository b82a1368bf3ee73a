"""Toy dynamics (unconstrained features, Gaussian mixtures) run against ``theory``."""
