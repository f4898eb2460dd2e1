"""Config validation: every bad input names the file and key, and the CLI exits non-zero."""
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml
from click.testing import CliRunner

from trkx.cli import main
from trkx.config import ConfigError, load_yaml, parse_config
from trkx.runner import Pipeline

from conftest import make_pipeline


@dataclass
class Inner:
    a: int = 1


@dataclass
class Outer:
    name: str
    rate: float = 0.5
    mode: Literal["x", "y"] = "x"
    sizes: list[int] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)


def test_parse_valid_and_int_for_float():
    cfg = parse_config(Outer, {"name": "n", "rate": 2, "sizes": [1, 2], "inner": {"a": 3}}, "f.yaml")
    assert cfg.rate == 2.0 and isinstance(cfg.rate, float) and cfg.inner.a == 3


@pytest.mark.parametrize("data, fragment", [
    ({"name": "n", "rat": 1.0}, "unknown key 'rat'"),
    ({"name": "n", "rate": "fast"}, "key 'rate': expected float"),
    ({"name": 3}, "key 'name': expected str"),
    ({"name": "n", "mode": "z"}, "key 'mode': expected one of"),
    ({"name": "n", "sizes": [1, "b"]}, "key 'sizes[1]': expected int"),
    ({"name": "n", "inner": {"b": 1}}, "unknown key 'inner.b'"),
    ({"name": "n", "rate": float("nan")}, "key 'rate': NaN"),
    ({}, "missing required key 'name'"),
    ({"name": "n", "sizes": [True]}, "key 'sizes[0]': expected int"),
])
def test_parse_errors_name_file_and_key(data, fragment):
    with pytest.raises(ConfigError) as err:
        parse_config(Outer, data, "conf/f.yaml")
    assert "conf/f.yaml" in str(err.value) and fragment in str(err.value)


def test_load_yaml_malformed_and_missing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(ConfigError, match="bad.yaml: malformed YAML"):
        load_yaml(bad)
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_yaml(tmp_path / "nope.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_yaml(scalar)


def _edit(path, **kv):
    cfg = yaml.safe_load(path.read_text())
    cfg.update(kv)
    path.write_text(yaml.safe_dump(cfg))


@pytest.mark.parametrize("stage, edit, fragment", [
    ("gnn", {"hiden": 3}, "gnn.yaml: unknown key 'hiden'"),
    ("filter", {"cut": "high"}, "filter.yaml: key 'cut': expected float"),
    ("graph", {"backend": "octree"}, "graph.yaml: key 'backend'"),
    ("labeling", {"stage": "labelling"}, "labeling.yaml: key 'stage': unknown stage 'labelling'"),
    ("data", {"transforms": [{"name": "PtCutt"}]}, "data.yaml: key 'transforms[0].name'"),
    ("data", {"simulation": {"pt_min": "a"}}, "data.yaml: key 'simulation.pt_min': expected float"),
])
def test_pipeline_rejects_bad_stage_configs(tmp_path, stage, edit, fragment):
    path = make_pipeline(tmp_path)
    _edit(path.parent / "stages" / f"{stage}.yaml", **edit)
    with pytest.raises(ConfigError) as err:
        Pipeline(path)
    assert fragment in str(err.value)


def test_cli_bad_config_exits_nonzero_with_one_line(tmp_path):
    path = make_pipeline(tmp_path)
    _edit(path.parent / "stages" / "gnn.yaml", hidden="big")
    result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 2
    assert "gnn.yaml: key 'hidden': expected int" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "work").exists()  # validated before any work is done


def test_cli_missing_pipeline_file(tmp_path):
    result = CliRunner().invoke(main, ["run", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "config file not found" in result.output


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "trkx.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for cmd in ("simulate", "run", "train", "infer", "eval", "bench"):
        assert cmd in out.stdout


def test_every_shipped_pipeline_config_loads():
    """Each pipeline YAML under configs/ parses, finds its stage YAMLs and passes the chain checks
    (nothing runs)."""
    from pathlib import Path

    from trkx.runner import Pipeline
    configs = Path(__file__).resolve().parent.parent / "configs"
    paths = sorted(configs.glob("pipeline*.yaml")) + sorted(configs.glob("benchmark*.yaml"))
    assert len(paths) >= 10
    for path in paths:
        Pipeline(path, progress=False)
