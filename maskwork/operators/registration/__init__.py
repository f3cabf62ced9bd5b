"""Registration: align a moving image onto a fixed one.

:mod:`~maskwork.operators.registration.transform` holds the :class:`Transform` every
registration operator returns (feature-based, landmarks, SimpleITK intensity-based):
a 3x3 matrix mapping a MOVING pixel (x = column, y = row, 1) onto the FIXED image, plus,
for deformable kinds, a dense backward map on the fixed grid.
"""
