"""Inpainting operators (fill the pixels under a mask); the registry imports every module here."""
