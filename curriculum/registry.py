"""Name -> implementation registries with typed configs (scorers, mixers, orderings, LR schedules,
averaging weights), the strict config base, and the one formatter of validation errors.

Each entry is a class plus a pydantic config model whose ``name`` field is a ``Literal`` of the
registered name. `Registry.config_union()` turns the registry into a discriminated union, so a
recipe names an implementation by ``name:`` and pydantic validates its parameters, reporting
unknown names with the list of choices and every bad field with its key path.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Callable, Generic, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from curriculum.errors import UserError

T = TypeVar("T")


def _alternatives(annotation: Any) -> list[Any]:
    """The types an annotation admits, with Optional/Union/Annotated unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _alternatives(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [t for arg in get_args(annotation) for t in _alternatives(arg)]
    return [annotation]


def _numbers_only(annotation: Any) -> bool:
    kinds = _alternatives(annotation)
    return any(k in (int, float) for k in kinds) and not any(k in (bool, Any) for k in kinds)


def boolean_as_number(annotation: Any, value: Any) -> str | None:
    """Where ``value`` holds a YAML boolean that pydantic would quietly read as 1 or 0 for a number
    field (``steps: true``, a mixture weight ``code: yes``), or None."""
    if isinstance(value, bool):
        return "" if _numbers_only(annotation) else None
    for kind in _alternatives(annotation):
        origin, args = get_origin(kind), get_args(kind)
        if origin is dict and isinstance(value, dict) and len(args) == 2 and _numbers_only(args[1]):
            bad = [str(k) for k, v in value.items() if isinstance(v, bool)]
            if bad:
                return f" (at {', '.join(bad)})"
        if origin in (list, tuple) and isinstance(value, (list, tuple)) and args:
            element = args[0] if origin is list or (len(args) == 2 and args[1] is Ellipsis) else None
            items = [(i, v, element or (args[i] if i < len(args) else None)) for i, v in enumerate(value)]
            bad = [
                str(i) for i, v, kind_i in items if isinstance(v, bool) and kind_i is not None and _numbers_only(kind_i)
            ]
            if bad:
                return f" (at item {', '.join(bad)})"
    return None


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, values are validated on assignment,
    and a boolean is never accepted where a number is expected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        errors = []
        for key, value in data.items():
            field = cls.model_fields.get(key) if isinstance(key, str) else None
            where = boolean_as_number(field.annotation, value) if field is not None else None
            if where is not None:
                message = f"expected a number, got a boolean{where} (true/false/yes/no are booleans in YAML)"
                errors.append({"type": PydanticCustomError("bool_as_number", message), "loc": (key,), "input": value})
        if errors:
            # Raised as a ValidationError so each problem keeps its key path (training.steps).
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


class Registry(Generic[T]):
    """A registry of implementations of one kind, each with its own config model."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, tuple[Callable[..., T], type[BaseModel]]] = {}

    def register(self, name: str, config: type[BaseModel]) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Class decorator: ``@REGISTRY.register("name", NameConfig)``."""
        field = config.model_fields.get("name")
        if field is None or getattr(field.annotation, "__args__", None) != (name,):
            raise TypeError(f"{config.__name__} must declare `name: Literal[{name!r}]`")

        def decorator(impl: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise TypeError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = (impl, config)
            return impl

        return decorator

    def names(self) -> list[str]:
        return sorted(self._entries)

    def config_class(self, name: str) -> type[BaseModel]:
        return self._lookup(name)[1]

    def _lookup(self, name: str) -> tuple[Callable[..., T], type[BaseModel]]:
        try:
            return self._entries[name]
        except KeyError:
            raise UserError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

    def build(self, config: BaseModel, *args: Any, **kwargs: Any) -> T:
        """Instantiate the implementation named by ``config.name`` with ``config`` and extra args."""
        impl, _ = self._lookup(config.name)  # type: ignore[attr-defined]
        return impl(config, *args, **kwargs)

    def parse(self, data: dict[str, Any] | BaseModel) -> BaseModel:
        """Validate a plain dict (``{"name": ..., ...}``) into the registered config model."""
        if isinstance(data, BaseModel):
            return data
        if not isinstance(data, dict) or "name" not in data:
            raise UserError(f"a {self.kind} is a mapping with a `name` key; choose one of: {', '.join(self.names())}")
        return self.config_class(data["name"]).model_validate(data)

    def config_union(self) -> Any:
        """A pydantic discriminated union over every registered config (tagged by ``name``)."""
        configs = tuple(config for _, config in self._entries.values())
        if len(configs) == 1:
            return configs[0]
        return Annotated[Union[configs], Field(discriminator="name")]  # type: ignore[valid-type]


def validation_problems(error: ValidationError, data: Any = None, top: str = "(top)") -> list[str]:
    """One line per problem of a pydantic error: ``key.path: message``, in words a user can act on.

    Discriminated unions add the chosen tag (e.g. ``static``) to the error's path; it only confuses
    users. With the validated input ``data`` given, the path is walked through it and an element
    that is not a key of its mapping but the mapping's ``name`` is dropped as such a tag. ``top``
    names the whole object when a problem has no path.
    """
    lines = []
    for err in error.errors():
        where = ".".join(_user_path(err["loc"], data)) or top
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (not part of the schema; check the spelling)"
        elif err["type"] == "union_tag_invalid":
            given = err["input"].get("name") if isinstance(err["input"], dict) else err["input"]
            message = f"unknown name {given!r}; choose one of: {err['ctx']['expected_tags']}"
        elif err["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{where}: {message}")
    return lines


def _user_path(loc: tuple[Any, ...], data: Any) -> list[str]:
    path, node = [], data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("name") == part:
            continue  # a discriminator tag, not a key of the input
        path.append(str(part))
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return path
