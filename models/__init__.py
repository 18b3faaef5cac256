"""The network side: bundles, architectures, training, model handlers, the predictor.

Importing this package (or ``models.bundle``) never imports TensorFlow; modules that
need it import it inside functions or are only imported by the parts that run models.
"""
