"""Readers and writers of the on-disk dataset formats, shared by download and preprocess."""
