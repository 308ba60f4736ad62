"""Gymnasium trading environments."""
