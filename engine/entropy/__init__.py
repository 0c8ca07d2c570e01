"""Entropy coding for the KLT codec: a byte-wise rANS coder and its static Laplace tables (Numba, no torch)."""
