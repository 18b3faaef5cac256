"""Raster core (``transforms.core``) and the Beam steps built on it."""
