"""Bit-swap: lossless coding of 64x64 patches with a hierarchical VAE and bits-back ANS.

- ``model``: the VAE (training and the distribution parameters coding uses);
- ``discretize``: fixed bin layouts, parameter snapping and canonical probability tables;
- ``streams``: the ANS coders, in this process or in a spawn-safe process pool;
- ``coding``: Bit-swap's coding order, in lock-step over independent streams;
- ``coder``: :class:`~edge.codec.bitswap.coder.BitswapCoder`, the region coder (seeding,
  checks, whole images) and the registry loader of the shipped weights.
"""
