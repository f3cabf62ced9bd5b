"""Reusable Qt widgets of maskwork."""
