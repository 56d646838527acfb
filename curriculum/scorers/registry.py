"""The scorer registry (its own module so scorer modules can import it without cycles)."""

from curriculum.registry import Registry
from curriculum.scorers.base import Scorer

SCORERS: Registry[Scorer] = Registry("scorer")
