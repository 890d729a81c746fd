"""Config fields that carry their help text and their rule, so one definition serves three readers: the config
checks itself (Python API and a loaded config.json alike), and an entry point defines its flags from the fields
with the same defaults, help and checks.

    @dataclasses.dataclass
    class TrainingConfig:
        epochs: int = setting(12, "Epochs.", at_least(1))
        def __post_init__(self):
            check_fields(self)

    define_flags(TrainingConfig, __name__)            # in an entry point: --epochs, checked at flag parsing
    TrainingConfig(**values_from_flags(TrainingConfig))
"""

import dataclasses
from typing import NamedTuple

from captioning.util.errors import InvalidInput


class ConfigError(InvalidInput):
    """A config value breaks its field's rule; the message names the field and the rule."""


class Rule(NamedTuple):
    check: object  # value -> bool
    text: str  # what a failing value is told, e.g. "must be at least 1"


def at_least(low, why: str = "") -> Rule:
    return Rule(lambda value: value >= low, f"must be at least {low}{why}")


def within(low, high, closed_high: bool = True) -> Rule:
    if closed_high:
        return Rule(lambda value: low <= value <= high, f"must be in [{low}, {high}]")
    return Rule(lambda value: low <= value < high, f"must be in [{low}, {high})")


def setting(default, help: str, rule: Rule = None, flag: str = None):
    """A dataclass field with its flag's help, its rule and (when it differs from the field's) its flag name.
    `help=None` keeps the field off the command line."""
    return dataclasses.field(default=default, metadata={"help": help, "rule": rule, "flag": flag})


def check_fields(config) -> None:
    """ConfigError for the first field whose value breaks its rule (None means "not given" and passes)."""
    for field in dataclasses.fields(config):
        rule, value = field.metadata.get("rule"), getattr(config, field.name)
        types = _types(field.type)
        if not isinstance(value, types) and not (float in types and type(value) is int):
            raise ConfigError(
                f"{type(config).__name__}.{field.name} = {value!r}: must be of type "
                f"{' or '.join(kind.__name__ for kind in types)}"
            )
        if rule and value is not None and not rule.check(value):
            raise ConfigError(f"{type(config).__name__}.{field.name} = {value!r}: {rule.text}")


def flag_name(field) -> str:
    return field.metadata.get("flag") or field.name


def command_line_fields(config_class):
    return [field for field in dataclasses.fields(config_class) if field.metadata.get("help")]


def define_flags(config_class, module_name: str) -> None:
    """An absl flag per field with help text, with the field's default and its rule as the flag's validator (one
    line at flag parsing, before anything heavy loads). `module_name` (the entry point's __name__) is where --help
    lists them."""
    from absl import flags  # an entry point's dependency, not the library's

    define = {int: flags.DEFINE_integer, float: flags.DEFINE_float, bool: flags.DEFINE_bool, str: flags.DEFINE_string}
    for field in command_line_fields(config_class):
        kind = next(kind for kind in (bool, int, float, str) if kind in _types(field.type))
        name, rule = flag_name(field), field.metadata.get("rule")
        define[kind](name, field.default, field.metadata["help"], module_name=module_name)
        if rule:
            flags.register_validator(
                name, lambda value, check=rule.check: value is None or check(value), message=rule.text
            )


def values_from_flags(config_class) -> dict:
    """{field name: its flag's value} of every command-line field, for config_class(**values)."""
    from absl import flags

    return {field.name: flags.FLAGS[flag_name(field)].value for field in command_line_fields(config_class)}


def _types(annotation) -> tuple:
    return getattr(annotation, "__args__", (annotation,))  # `int | None` -> (int, NoneType)
