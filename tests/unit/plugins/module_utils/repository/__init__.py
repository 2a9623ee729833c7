"""Unit tests of the repository layer (a package so that test_paths.py does not clash with host/test_paths.py)."""
