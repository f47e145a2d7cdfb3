"""Active learning: selection scores (multi-task inconsistency, entropy, core-set, flip consistency),
detection / segmentation metrics (mAP, mIoU, mDSQ) and the resumable selection loop.

Everything here is NumPy or pure JAX over model outputs; training is passed in
as a function, so this room depends on nothing above ``data``.

References:
  Hekimoglu et al., "Multi-Task Consistency for Active Learning", ICCVW 2023.
"""
