"""maskwork: interactive image-processing workbench."""
__version__ = "0.1.0"
