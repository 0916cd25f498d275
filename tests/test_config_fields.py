"""The one typed config path: config arguments, --config flags and sweep overrides agree."""

import copy

import ml_collections
import pytest
from absl import flags

from configs.copy import get_config
from configs.sweeps.smoke import get_config as smoke_sweep
from pe_jax.sweep import expand_sweep
from pe_jax.training import define_config_file, set_field


def from_arg(key, text):
    return get_config(f"{key}={text}")


def from_flag(key, text):
    argv = ["prog", "--config=configs/copy.py", f"--config.{key}={text}"]
    flag_values = flags.FlagValues()
    define_config_file("config", None, "", flag_values=flag_values, sys_argv=argv)
    flag_values(argv)
    return flag_values.config


def from_sweep(key, value):
    sweep = smoke_sweep()
    sweep.tasks = [dict(label="copy", config=get_config())]
    sweep.encodings = [dict(label="rope", name="rope")]  # the task config's own encoding
    section, field = key.split(".")
    sweep.overrides = ml_collections.ConfigDict({section: {field: value}})
    return expand_sweep(sweep)[0].config


def flag_error(key, text):
    """The flag route: absl reports the parser's ValueError naming the flag."""
    with pytest.raises(flags.IllegalFlagValueError) as info:
        from_flag(key, text)
    assert isinstance(info.value.__context__, ValueError)
    return str(info.value)


@pytest.mark.parametrize(
    "key, text, allowed",
    [
        ("model.share_encoding", "treu", "true or false"),
        ("model.width", "abc", "integer"),
        ("train.learning_rate", "fast", "number"),
        ("train.steps", "1.5", "integer"),
    ],
)
def test_bad_value_names_field_value_and_allowed_by_every_route(key, text, allowed):
    for route in (from_arg, from_sweep):
        with pytest.raises(ValueError, match=key) as info:
            route(key, text)
        assert repr(text) in str(info.value) and allowed in str(info.value)
    message = flag_error(key, text)
    assert f"--config.{key}={text}" in message and allowed in message


@pytest.mark.parametrize(
    "key, text, value",
    [
        ("model.share_encoding", "No", False),
        ("model.share_encoding", "YES", True),
        ("model.share_encoding", "0", False),
        ("model.width", "24", 24),
        ("train.learning_rate", "3e-4", 3e-4),
        ("seeds", "0;1", (0, 1)),
        ("model.encoding", "alibi", "alibi"),
    ],
)
def test_same_value_gives_same_config_by_every_route(key, text, value):
    configs = [from_arg(key, text), from_flag(key, text)]
    if key not in ("seeds", "model.encoding"):  # the sweep sets these itself
        configs.append(from_sweep(key, text))
    for config in configs:
        node = config
        for part in key.split("."):
            node = node[part]
        assert node == value and type(node) is type(value)
    base = configs[0]
    for config in configs[1:]:
        other = copy.deepcopy(config)
        other.seeds = base.seeds
        assert other.to_dict() == base.to_dict()


def test_bools_take_only_the_six_words():
    config = get_config()
    for text in ("t", "f", "on", "2", ""):
        with pytest.raises(ValueError, match="model.share_encoding"):
            set_field(config, "model.share_encoding", text)
    with pytest.raises(ValueError, match="model.share_encoding"):
        set_field(config, "model.share_encoding", 1)  # a Python value must be a bool


def test_unknown_field_is_named():
    with pytest.raises(ValueError, match="config.model.widht"):
        get_config("model.widht=3")
    with pytest.raises(ValueError, match="sweep.overrides.model.widht"):
        from_sweep("model.widht", 3)


def test_encoding_options_from_the_argument_the_flag_and_a_sweep():
    from pe_jax.training import check_config

    by_arg = from_arg("model.encoding_options.base", "500")
    by_flag = from_flag("model.encoding_options.base", "500")
    sweep = smoke_sweep()
    sweep.encodings = [dict(label="rope", name="rope", options={"base": 500})]
    by_sweep = expand_sweep(sweep)[0].config
    for config in (by_arg, by_flag, by_sweep):
        assert config.model.encoding_options.to_dict() == {"base": 500}
    check_config(by_flag)  # the encoding accepts it
    by_flag = from_flag("model.encoding_options.base", "-1")
    with pytest.raises(ValueError, match="base"):  # the encoding's own check refuses it
        check_config(by_flag)


def test_unknown_field_suggests_close_ones():
    with pytest.raises(ValueError, match="Did you mean 'width'"):
        get_config("model.widht=3")
    assert "Did you mean 'width'" in flag_error("model.widht", "3")


def test_config_imports_name_a_missing_module_or_file(tmp_path):
    from pe_jax.user_modules import import_modules

    with pytest.raises(ValueError, match="config.imports: no module named 'no_such_modul'"):
        import_modules(["no_such_modul"])
    (tmp_path / "imports_probe.py").write_text("VALUE = 3\n")
    with pytest.raises(ValueError, match="Did you mean 'imports_probe.py'"):
        import_modules([str(tmp_path / "imports_prob.py")])
    (module,) = import_modules([str(tmp_path / "imports_probe.py")])
    assert module.VALUE == 3 and import_modules([str(tmp_path / "imports_probe.py")]) == [module]


def test_imports_is_added_only_when_set():
    """A config without imports is the config of before (its finished runs are still found)."""
    assert "imports" not in get_config()
    for config in (from_arg("imports", "a.py;pkg.mod"), from_flag("imports", "a.py;pkg.mod")):
        assert config.imports == ("a.py", "pkg.mod")
    with pytest.raises(ValueError, match="config.imprts"):
        from_arg("imprts", "a.py")


def test_the_text_none_unsets_clip_norm_as_documented():
    from configs.copy import get_config
    from pe_jax.training import settings_from_config

    c = get_config("smoke,train.clip_norm=None")
    assert c.train.clip_norm is None
    assert settings_from_config(c).optimizer["clip_norm"] is None
    with pytest.raises(ValueError, match="config.train.steps"):
        settings_from_config(get_config("smoke,train.steps=None"))
