"""Fixtures of the stage tests: the CLIP models made at test time and the scene stage on them."""

from tests.scene import shapes_stage, tiny_settings  # noqa: F401
from tests.tiny_clip import mobileclip_random, tiny_clip  # noqa: F401
