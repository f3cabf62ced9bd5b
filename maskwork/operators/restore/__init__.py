"""Restoration operators: denoising, deblurring, contrast and tone, seamless cloning.

The registry imports every module here. Each operator keeps its input's dtype and channel
count in its ``image`` output (an alpha channel passes through untouched) and works in
floating point in between.
"""
