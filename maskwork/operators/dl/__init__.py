"""Deep-learning operators: a CNN trained on scribbles, models people bring, Segment Anything.

torch (and onnxruntime, segment_anything) are imported inside the functions that use them,
never at module level, so that registering these operators costs nothing at start-up.
"""
