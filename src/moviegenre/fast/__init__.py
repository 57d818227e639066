"""Compiled scoring: the linear and static kinds as plain arrays (numpy and ``tokenizers``
only; never scikit-learn, pandas or torch), and ``fast.npz``, the file that stores them."""
