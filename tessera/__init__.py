"""tessera: satellite scenes to seamless, catalogued maps with deep learning."""

__version__ = "0.1.0"
