"""`define_config_file`: the entry points' --config flag, on the one typed config setter.

--config=<file or name>[:arg] loads a config (`pe_jax.config_files.load_config`: a path, or a
name in the configs package such as "copy:smoke"), and every --config.<field>=<value> on the
command line becomes a flag that sets its field with `pe_jax.config_fields.set_field`, the
setter the config argument and the sweep overrides use. So an option of an encoding is set
like any field (--config.model.encoding_options.base=500), and an error names the flag.
"""

from __future__ import annotations

import re
import sys

import ml_collections
from absl import flags

from pe_jax.config_fields import field_type, parse_field, set_field
from pe_jax.config_files import load_config


class _ConfigFileParser(flags.ArgumentParser):
    def parse(self, argument):
        config = load_config(argument)
        if isinstance(config, ml_collections.ConfigDict):
            config.lock()  # a misspelled field is an error, not a new field
        return config

    def flag_type(self) -> str:
        return "config file"


class _FieldParser(flags.ArgumentParser):
    """Sets one dotted field of `config` (repeated tuple flags extend the tuple)."""

    def __init__(self, config: ml_collections.ConfigDict, path: str):
        self.config, self.path = config, path
        self.seen = False

    def parse(self, argument):
        value = argument
        if self.seen and field_type(self.config, self.path) is tuple:
            parsed = parse_field(f"config.{self.path}", argument, tuple)
            value = tuple(self.config[self.path] or ()) + parsed
        set_field(self.config, self.path, value)
        self.seen = True
        return self.config[self.path]

    def flag_type(self) -> str:
        kind = field_type(self.config, self.path)
        return kind.__name__ if kind is not None else "option"


class _ConfigFileFlag(flags.Flag):
    """The --<name> flag; parsing it defines the --<name>.<field> flags present in argv."""

    def __init__(self, name, default, help_string, flag_values, sys_argv):
        self.flag_values = flag_values
        self.sys_argv = sys_argv
        parser, serializer = _ConfigFileParser(), flags.ArgumentSerializer()
        super().__init__(parser, serializer, name, default, help_string)

    def _parse(self, argument):
        config = super()._parse(argument)
        argv = sys.argv if self.sys_argv is None else self.sys_argv
        pattern = re.compile(rf"^--?(?:no)?{re.escape(self.name)}\.([^=]+)")
        paths = dict.fromkeys(m.group(1) for a in argv if (m := pattern.match(a)))
        for path in paths:
            flag_name = f"{self.name}.{path}"
            if flag_name in self.flag_values:  # parsed again: bind the new config
                delattr(self.flag_values, flag_name)
            field = flags.Flag(
                _FieldParser(config, path),
                flags.ArgumentSerializer(),
                flag_name,
                None,
                f"Sets the field {path} of --{self.name}.",
                boolean=field_type(config, path) is bool,
            )
            flags.DEFINE_flag(field, self.flag_values)
        return config


def define_config_file(
    name: str,
    default: str | None = None,
    help_string: str = "",
    *,
    flag_values: flags.FlagValues = flags.FLAGS,
    sys_argv: list[str] | None = None,
):
    """Defines --<name>=<config file or name>[:arg] and its --<name>.<field>=<value> flags.

    Args:
      name: the flag's name ("config").
      default: a config spec used when the flag is not given (None: no config).
      help_string: the flag's help.
      flag_values: where to define it (absl's FLAGS by default).
      sys_argv: the command line whose --<name>.<field> flags to define (default sys.argv).

    Returns:
      The flag's holder; `.value` is the loaded config, locked, with the fields set.
    """
    flag = _ConfigFileFlag(name, default, help_string, flag_values, sys_argv)
    return flags.DEFINE_flag(flag, flag_values)
