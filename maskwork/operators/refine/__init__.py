"""Mask refinement operators (one module each); the registry imports every module here."""
