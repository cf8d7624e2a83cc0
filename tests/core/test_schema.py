"""The spec's one declared schema: the library, the CLI, the docs and editors read the same one."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from keras_surgeon_rl import SurgeryError
from keras_surgeon_rl.cli import main
from keras_surgeon_rl.schema import SPEC_SCHEMA
from keras_surgeon_rl.spec import Spec

ROOT = Path(__file__).resolve().parents[2]


def test_the_published_schema_file_is_the_one_the_library_uses():
    assert json.loads((ROOT / "docs" / "spec.schema.json").read_text()) == SPEC_SCHEMA


def test_the_schema_is_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SPEC_SCHEMA)


def test_the_readme_table_lists_every_key():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## The spec"):readme.index("## Supported layers")]
    for key in SPEC_SCHEMA["properties"]:
        assert f"| `{key}` |" in table


GOOD = [
    {"inputs": {"old": ["x_dot", "theta"], "new": ["x", "x_dot", "theta", "theta_dot"]}},
    {"outputs": {"q": {"old": ["l", "r"], "new": ["l", "r", "n"], "init": {"n": {"keep_greedy": 0.5}}}}},
    {"units": {"h": 32, "g": [3, 1, "new"]}, "init": "net2net"},
    {"insert": [{"after": "conv", "layer": "Conv2D", "init": "top_right", "kernel_size": 3, "padding": "same"}]},
    {"delete": ["extra"]},
]


@pytest.mark.parametrize("spec", GOOD)
def test_specs_the_library_accepts_are_valid_for_any_json_schema_validator(spec):
    Spec.parse(spec)
    jsonschema.validate(spec, SPEC_SCHEMA)  # what an editor does with docs/spec.schema.json


@pytest.mark.parametrize("spec", [
    {"units": {"h": 0}}, {"inputs": {"new": []}}, {"insert": [{"after": "h", "layer": "LSTM"}]},
    {"outputs": {"new": [1], "init": "clone"}}, {"delete": ["a", "a"]}, {"unit": {}},
])
def test_specs_the_library_refuses_are_invalid_for_any_validator_too(spec):
    with pytest.raises(SurgeryError):
        Spec.parse(spec)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(spec, SPEC_SCHEMA)


def test_cli_prints_the_schema(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == SPEC_SCHEMA


def test_cli_checks_a_spec_file_without_a_model(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(GOOD[0]))
    bad.write_text("units:\n  h: 0\n")
    assert main(["schema", "--check", str(good)]) == 0
    assert "a valid spec" in capsys.readouterr().out
    assert main(["schema", "--check", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "bad.yaml:2" in err[0] and "units['h']" in err[0]
