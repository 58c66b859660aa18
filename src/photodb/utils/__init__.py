"""Helpers shared by stages: image decoding, EXIF parsing, file discovery, model plumbing."""
