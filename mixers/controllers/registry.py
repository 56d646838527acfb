"""The controller registry (its own module so controller modules can import it without cycles)."""

from curriculum.registry import Registry
from mixers.controllers.base import Controller

CONTROLLERS: Registry[Controller] = Registry("controller")
