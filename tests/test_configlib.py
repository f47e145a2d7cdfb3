"""Typed configs: presets, overrides with type checks, validation messages."""

import pytest

from jaxcompress import configlib as C
from jaxcompress import configs
from jaxcompress.errors import ConfigError

#: Presets that need a path only the user can give (the run they build on).
NEEDS_A_PATH = {"ofa-speech-probe": "model.upstream"}


def test_presets_are_valid_and_fresh_copies():
    for name in sorted(configs.PRESETS):
        cfg = configs.get_preset(name)
        assert cfg.name == name
        if name in NEEDS_A_PATH:
            with pytest.raises(ConfigError, match=NEEDS_A_PATH[name]):
                C.validate(cfg)
            continue
        C.validate(cfg)
    a = configs.get_preset("digits-mlp")
    a.optim.learning_rate = 9.0
    assert configs.get_preset("digits-mlp").optim.learning_rate != 9.0


def test_overrides_parse_declared_types():
    cfg = C.apply_overrides(configs.get_preset("digits-mlp"), [
        "steps=12", "optim.learning_rate=3e-4", "model.hidden_sizes=64,32", "mesh.data=2",
        "optim.name=sgd", "data.eval_split=test", "model.dropout=0"])
    assert cfg.steps == 12 and isinstance(cfg.steps, int)
    assert cfg.optim.learning_rate == pytest.approx(3e-4)
    assert cfg.model.hidden_sizes == (64, 32)
    assert cfg.mesh.data == 2 and cfg.optim.name == "sgd" and cfg.data.eval_split == "test"
    assert cfg.model.dropout == 0.0 and isinstance(cfg.model.dropout, float)
    C.validate(cfg)


def test_overrides_do_not_mutate_the_input():
    base = configs.get_preset("digits-mlp")
    before = base.optim.learning_rate
    C.apply_overrides(base, ["optim.learning_rate=0.5"])
    assert base.optim.learning_rate == before != 0.5


@pytest.mark.parametrize("override, message", [
    ("optim.lr=1", "unknown config key 'optim.lr'; allowed keys under 'optim': name, learning_rate"),
    ("stepz=3", "did you mean 'steps'"),
    ("steps=ten", "config key 'steps' expects an integer, got 'ten'"),
    ("steps=1.5", "expects an integer"),
    ("optim.learning_rate=fast", "expects a number"),
    ("optim.learning_rate=nan", "finite"),
    ("optim=3", "is a group"),
    ("steps.x=3", "is a value, not a group"),
    ("novalue", "must look like key=value"),
    ("model.hidden_sizes=64,x", "expects an integer"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as info:
        C.apply_overrides(configs.get_preset("digits-mlp"), [override])
    assert message in str(info.value)


@pytest.mark.parametrize("override, message", [
    ("optim.name=adagrad", "config key 'optim.name' must be one of adamw, adam, sgd, lamb; got 'adagrad'"),
    ("optim.learning_rate=0", "config key 'optim.learning_rate' must be > 0.0"),
    ("optim.learning_rate=-1", "must be > 0.0"),
    ("steps=0", "config key 'steps' must be >= 1"),
    ("model.dropout=1.5", "config key 'model.dropout' must be <= 0.95"),
    ("mesh.data=0", "config key 'mesh.data' must be -1 (auto) or >= 1"),
    ("mesh.tensor=0", "config key 'mesh.tensor' must be >= 1"),
    ("task=regress", "config key 'task' must be one of "),
    ("task=clasify", "did you mean 'classify'"),
])
def test_out_of_range_values_fail_validation(override, message):
    cfg = C.apply_overrides(configs.get_preset("digits-mlp"), [override])
    with pytest.raises(ConfigError) as info:
        C.validate(cfg)
    assert message in str(info.value)


def test_unknown_preset_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match="unknown preset 'digits-mpl'.*digits-mlp.*did you mean"):
        configs.get_preset("digits-mpl")


def test_python_config_file(tmp_path):
    path = tmp_path / "my_config.py"
    path.write_text(
        "from jaxcompress.configs import get_preset\n"
        "def get_config():\n"
        "    cfg = get_preset('digits-mlp-tiny')\n"
        "    cfg.name = 'mine'\n"
        "    return cfg\n")
    assert configs.load_config(str(path)).name == "mine"
    (tmp_path / "bad.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match="must define get_config"):
        configs.load_config(str(tmp_path / "bad.py"))
    with pytest.raises(ConfigError, match="does not exist"):
        configs.load_config(str(tmp_path / "missing.py"))


def test_config_file_errors_name_the_file_and_line(tmp_path):
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def get_config():\n    return (\n")
    with pytest.raises(ConfigError, match=r"syntax\.py' line 2: syntax error"):
        configs.load_config(str(syntax))
    raising = tmp_path / "raising.py"
    raising.write_text("import math\n\n\ndef get_config():\n    return math.sqrt(-1)\n")
    with pytest.raises(ConfigError, match=r"raising\.py' line 5: ValueError: math domain error"):
        configs.load_config(str(raising))


def test_describe_lists_every_leaf_key():
    keys = [row[0] for row in C.describe(configs.get_preset("digits-mlp"))]
    assert "optim.learning_rate" in keys and "mesh.tensor" in keys and "model.hidden_sizes" in keys
