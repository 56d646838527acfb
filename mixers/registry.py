"""The mixer registry (its own module so mixer modules can import it without cycles)."""

from curriculum.registry import Registry
from mixers.base import Mixer

MIXERS: Registry[Mixer] = Registry("mixer")
