"""seqae.config: loading, overrides (the file is the schema), saving."""

from __future__ import annotations

import pytest
import yaml

from seqae.config import (
    ConfigError,
    apply_overrides,
    check_config,
    config_keys,
    load_config,
    parse_overrides,
    save_config,
)

BASE = {
    "name": "vae",
    "seed": 0,
    "epochs": 3,
    "amp": True,
    "scheduler": None,
    "model": {"latent_dim": 8, "hidden": [64, 32], "beta": 1.0},
    "optim": {"lr": 0.001, "betas": [0.9, 0.999]},
}


def test_load_config_reads_a_mapping_and_exponent_floats(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("# seqae run vae\nlr: 1e-3\nwd: 5E-4\nname: x\nsteps: 10\nbig: 1.5e+3\n")
    cfg = load_config(path)
    assert cfg == {"lr": 0.001, "wd": 0.0005, "name": "x", "steps": 10, "big": 1500.0}
    assert isinstance(cfg["lr"], float) and isinstance(cfg["steps"], int)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "is empty"),
        ("# only a comment\n\n", "is empty"),
        ("a: [1, 2\nb: }", "not valid YAML"),
        ("- 1\n- 2\n", "must contain a YAML mapping at the top level, got a list"),
        ("just a string", "got a str"),
    ],
)
def test_load_config_errors_name_the_file(tmp_path, text: str, match: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_load_config_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_parse_overrides_uses_yaml_values() -> None:
    parsed = parse_overrides(
        ["a.b=3", "lr=1e-3", "name=foo", "list=[1,2]", "flag=false", "x=null", "q='7'", "e="]
    )
    assert parsed == {
        "a.b": 3,
        "lr": 0.001,
        "name": "foo",
        "list": [1, 2],
        "flag": False,
        "x": None,
        "q": "7",
        "e": None,
    }
    assert parse_overrides(["path=a=b"]) == {"path": "a=b"}  # only the first '=' splits


@pytest.mark.parametrize("bad", ["noequals", "=3", "a..b=1", "a.=1"])
def test_parse_overrides_rejects_malformed(bad: str) -> None:
    with pytest.raises(ConfigError, match="override"):
        parse_overrides([bad])


def test_apply_overrides_sets_nested_values_and_copies() -> None:
    out = apply_overrides(BASE, ["model.latent_dim=16", "optim.lr=3e-4", "name=ae"])
    assert out["model"]["latent_dim"] == 16 and out["optim"]["lr"] == 0.0003
    assert out["name"] == "ae"
    assert BASE["model"]["latent_dim"] == 8  # the input is untouched
    out["model"]["hidden"].append(1)
    assert BASE["model"]["hidden"] == [64, 32]


def test_unknown_key_lists_valid_keys_and_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(BASE, {"optim.lrr": 0.1})
    message = str(info.value)
    assert "unknown config key 'optim.lrr'" in message
    assert "Did you mean 'optim.lr'" in message
    for key in config_keys(BASE):
        assert key in message
    assert "model.latent_dim" in message and "optim.betas" in message
    with pytest.raises(ConfigError, match="unknown config key 'nested.new'"):
        apply_overrides(BASE, {"nested.new": 1})


def test_extra_keys_are_allowed_and_listed() -> None:
    out = apply_overrides(
        BASE,
        {"output_dir": "runs/x", "resume": True, "logging.wandb.project": "p"},
        extra_keys=("output_dir", "resume", "logging"),
    )
    assert out["output_dir"] == "runs/x" and out["resume"] is True
    assert out["logging"] == {"wandb": {"project": "p"}}
    with pytest.raises(ConfigError, match="output_dir"):
        apply_overrides(BASE, {"outptu_dir": "x"}, extra_keys=("output_dir",))


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("epochs=ten", "override epochs='ten' has type str, but the config's value 3 has type int"),
        ("amp=1", "has type int, but the config's value True has type bool"),
        ("seed=true", "has type bool, but the config's value 0 has type int"),
        ("name=123", r"quote it"),
        ("model.hidden=64", "has type int, but the config's value \\[64, 32\\] has type list"),
        ("optim=3", "has type dict"),
        ("model.latent_dim.x=1", "'model.latent_dim' has type int, not a mapping"),
    ],
)
def test_type_mismatch_is_an_error(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        apply_overrides(BASE, [override])


def test_allowed_type_changes() -> None:
    out = apply_overrides(
        BASE,
        [
            "epochs=2.0",  # a whole float for an int key is stored as an int
            "model.beta=2",  # an int for a float default is stored as a float
            "scheduler=cosine",  # null defaults take anything
            "model.hidden=[8]",
            "optim.betas=null",  # null where the caller allows it
            "optim={lr: 0.5}",  # a mapping merges key by key
        ],
        nullable=("optim.betas",),
    )
    assert out["epochs"] == 2 and isinstance(out["epochs"], int)
    assert out["model"]["beta"] == 2.0 and isinstance(out["model"]["beta"], float)
    assert out["scheduler"] == "cosine" and out["model"]["hidden"] == [8]
    assert out["optim"] == {"lr": 0.5, "betas": None}
    with pytest.raises(ConfigError, match="unknown config key 'optim.momentum'"):
        apply_overrides(BASE, ["optim={momentum: 0.9}"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs=2.5", "must be a whole number"),
        ("optim.lr=", "is empty \\(null\\)"),
        ("optim.betas=null", "optim.betas cannot be null; expected a list"),
        ("epochs=null", "epochs cannot be null; expected an integer \\(the config's value is 3\\)"),
        ("model.hidden=[32,abc]", "element 'abc' has type str"),
        ("model.hidden=[32,1.5]", "element 1.5 has type float"),
    ],
)
def test_overrides_of_the_wrong_type_are_refused_in_one_line(override, message) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        apply_overrides(BASE, [override])
    assert "\n" not in str(info.value)


def test_an_overlay_states_only_what_differs(tmp_path) -> None:
    (tmp_path / "full.yaml").write_text(
        "# seqae run r\nseed: 0\ntrain:\n  epochs: 10\n  lr: 1.0e-3\nmodel:\n  hidden: [8, 4]\n"
    )
    (tmp_path / "tiny.yaml").write_text("base: full\ntrain:\n  epochs: 2\n")
    (tmp_path / "tinier.yaml").write_text("base: tiny.yaml\nmodel:\n  hidden: [2]\n")
    assert load_config(tmp_path / "tiny.yaml") == {
        "seed": 0,
        "train": {"epochs": 2, "lr": 1.0e-3},
        "model": {"hidden": [8, 4]},
    }
    assert load_config(tmp_path / "tinier.yaml")["model"]["hidden"] == [2]
    assert load_config(tmp_path / "tinier.yaml")["train"]["epochs"] == 2


def test_an_overlay_may_not_add_keys_or_change_types(tmp_path) -> None:
    (tmp_path / "full.yaml").write_text("train:\n  epochs: 10\n  lr: 1.0e-3\n")
    (tmp_path / "typo.yaml").write_text("base: full\ntrain:\n  epoch: 2\n")
    with pytest.raises(
        ConfigError, match="unknown config key 'train.epoch'. Did you mean 'train.epochs'"
    ):
        load_config(tmp_path / "typo.yaml")
    (tmp_path / "typed.yaml").write_text("base: full\ntrain:\n  lr: fast\n")
    with pytest.raises(ConfigError, match="typed.yaml \\(an overlay of full.yaml\\)"):
        load_config(tmp_path / "typed.yaml")
    (tmp_path / "orphan.yaml").write_text("base: nowhere\ntrain:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match="its base 'nowhere'"):
        load_config(tmp_path / "orphan.yaml")
    (tmp_path / "a.yaml").write_text("base: b\nx: 1\n")
    (tmp_path / "b.yaml").write_text("base: a\nx: 2\n")
    with pytest.raises(ConfigError, match="forms a cycle"):
        load_config(tmp_path / "a.yaml")


def test_save_config_round_trip_with_header(tmp_path) -> None:
    path = save_config(BASE, tmp_path / "run" / "config.yaml", header="seqae run vae\nline 2")
    text = path.read_text()
    assert text.startswith("# seqae run vae\n# line 2\n")
    assert load_config(path) == BASE
    assert list(load_config(path)) == list(BASE)  # key order kept


def test_save_config_rejects_non_yaml_values(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot be written as YAML"):
        save_config({"x": object()}, tmp_path / "c.yaml")
    assert not (tmp_path / "c.yaml").exists()


def test_saved_exponent_floats_reload_as_floats(tmp_path) -> None:
    path = save_config({"lr": 1e-5, "tiny": 1e-20}, tmp_path / "c.yaml")
    assert load_config(path) == {"lr": 1e-5, "tiny": 1e-20}
    assert yaml.safe_load(path.read_text())["lr"] == 1e-5


def test_an_overlay_may_turn_a_setting_off_with_null(tmp_path) -> None:
    (tmp_path / "full.yaml").write_text("train:\n  max_minutes: 55\n  lr: 1.0e-3\n")
    (tmp_path / "long.yaml").write_text("base: full\ntrain:\n  max_minutes: null\n")
    assert load_config(tmp_path / "long.yaml")["train"] == {"max_minutes": None, "lr": 1.0e-3}
    # a command-line override still may not, unless the recipe says the key is nullable
    with pytest.raises(ConfigError, match="train.max_minutes cannot be null"):
        apply_overrides(load_config(tmp_path / "full.yaml"), ["train.max_minutes=null"])


def test_invalid_yaml_is_one_line_naming_the_line_and_column(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("seed: 0\ntrain:\n  steps: [1, 2\n  lr: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config file {path} is not valid YAML: line 4, column 5: ")
    assert "expected ',' or ']'" in message
    with pytest.raises(ConfigError) as info:
        parse_overrides(["model.hidden=[1, 2"])
    assert "\n" not in str(info.value) and "not valid YAML" in str(info.value)


def test_check_config_applies_the_override_rules_to_a_whole_file() -> None:
    full = {**BASE, "model": {**BASE["model"], "beta": 2}, "overwrite": True}
    checked = check_config(full, BASE, extra_keys=("overwrite",), schema_name="vae.yaml")
    assert checked["model"]["beta"] == 2.0 and isinstance(checked["model"]["beta"], float)
    assert checked["overwrite"] is True and checked["scheduler"] is None
    assert check_config({**BASE, "optim": None}, BASE, nullable=("optim",))["optim"] is None

    def refused(cfg: dict, match: str, **kwargs) -> None:
        with pytest.raises(ConfigError, match=match) as info:
            check_config(cfg, BASE, schema_name="vae.yaml", **kwargs)
        assert "\n" not in str(info.value)

    refused({**BASE, "epochs": "abc"}, "epochs='abc' has type str, but vae.yaml's value 3 has")
    refused({**BASE, "epochs": None}, "epochs cannot be null; expected an integer")
    refused({**BASE, "optim": {"lr": None, "betas": [0.9]}}, "optim.lr cannot be null")
    refused({**BASE, "model": {**BASE["model"], "hidden": [8, "x"]}}, "element 'x'")
    refused({**BASE, "epoch": 3}, "unknown config key 'epoch'. Did you mean 'epochs'")
    without_optim = {k: v for k, v in BASE.items() if k != "optim"}
    refused(without_optim, "missing key optim, which vae.yaml has")
    no_beta = {**BASE, "model": {"latent_dim": 8, "hidden": [4]}}
    refused(no_beta, "missing key model.beta, which vae.yaml has")
