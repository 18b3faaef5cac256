"""Pipeline graphs and their options: infer, mosaic, prepare, and job submission."""
