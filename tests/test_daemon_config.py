"""Config files: the examples validate; a typo, a wrong type, a missing key or file gives one
message naming the YAML file, the line and the key path; secrets never show."""
from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import (EdgeConfig, MqttConfig, OffshoreConfig, SecretRef, Section, dump_yaml,
                         load_edge_config, load_offshore_config)
from edge.errors import ConfigError

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"

MINIMAL_EDGE = """\
device: drone-7
watch:
  folders: [card]
spool:
  folder: spool
coding:
  mode: source-file
mqtt:
  client_id: edge-drone-7
  port: 1883
"""


def write(tmp_path, text: str, name: str = "edge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path, loader=load_edge_config) -> str:
    with pytest.raises(ConfigError) as caught:
        loader(path)
    return str(caught.value)


def test_example_configs_validate(monkeypatch):
    edge = load_edge_config(DEPLOY / "edge.yaml")
    offshore = load_offshore_config(DEPLOY / "offshore.yaml")
    assert edge.mqtt.tls.enabled and edge.mqtt.auth.password.env == "EDGE_MQTT_PASSWORD"
    assert offshore.subscribe.group and offshore.output.folder.is_absolute()


def test_every_field_has_a_description():
    def models(root):
        yield root
        for field in root.model_fields.values():
            annotation = field.annotation
            for candidate in getattr(annotation, "__args__", (annotation,)):
                if isinstance(candidate, type) and issubclass(candidate, Section):
                    yield from models(candidate)

    for model in {*models(EdgeConfig), *models(OffshoreConfig)}:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_relative_paths_are_taken_from_the_config_folder(tmp_path):
    config = load_edge_config(write(tmp_path, MINIMAL_EDGE))
    assert config.watch.folders == [tmp_path / "card"]
    assert config.journal_path == tmp_path / "spool" / "journal.sqlite"


def test_unknown_key_names_file_line_and_path(tmp_path):
    path = write(tmp_path, MINIMAL_EDGE + "  hots: broker.example\n")
    message = error_of(path)
    assert f"{path}:11: mqtt.hots: unknown key" in message


def test_wrong_type_and_range(tmp_path):
    path = write(tmp_path, MINIMAL_EDGE.replace("port: 1883", "port: 70000"))
    assert f"{path}:10: mqtt.port: Input should be less than or equal to 65535 (got 70000)" in error_of(path)
    path = write(tmp_path, MINIMAL_EDGE.replace("folders: [card]", "folders: card-but-not-a-list"))
    assert f"{path}:3: watch.folders:" in error_of(path)


def test_missing_section_and_bad_yaml(tmp_path):
    path = write(tmp_path, MINIMAL_EDGE.replace("spool:\n  folder: spool\n", ""))
    assert f"{path}: spool: required key is missing" in error_of(path)
    path = write(tmp_path, "device: [unclosed\n")
    assert "not valid YAML" in error_of(path) and str(path) in error_of(path)
    assert "cannot read the config file" in error_of(tmp_path / "absent.yaml")


def test_missing_tls_file_is_named(tmp_path):
    path = write(tmp_path, MINIMAL_EDGE + "  tls:\n    enabled: true\n    ca_file: certs/ca.pem\n")
    message = error_of(path)
    assert "mqtt.tls.ca_file" in message and "certs/ca.pem does not exist" in message


def test_secret_comes_from_env_or_file_and_never_shows(tmp_path, monkeypatch):
    secret = "s3cret-Passw0rd"
    (tmp_path / "password").write_text(secret + "\n")
    path = write(tmp_path, MINIMAL_EDGE + "  auth:\n    username: drone\n    password: {file: password}\n")
    config = load_edge_config(path)
    assert config.mqtt.auth.password.resolve() == secret
    assert secret not in repr(config) and secret not in config.model_dump_json()

    monkeypatch.setenv("EDGE_TEST_PASSWORD", secret)
    assert SecretRef(env="EDGE_TEST_PASSWORD").resolve() == secret
    monkeypatch.delenv("EDGE_TEST_PASSWORD")
    with pytest.raises(ConfigError, match="EDGE_TEST_PASSWORD is not set"):
        SecretRef(env="EDGE_TEST_PASSWORD").resolve("mqtt.auth.password")

    path = write(tmp_path, MINIMAL_EDGE + f"  auth:\n    password: {secret}\n")
    message = error_of(path)
    assert "mqtt.auth.password" in message and secret not in message   # refused, and not echoed


def test_mqtt_section_checks_names_and_delays():
    with pytest.raises(ValueError, match="reconnect_max_s"):
        MqttConfig(client_id="x", reconnect_min_s=10, reconnect_max_s=1)
    with pytest.raises(ValueError, match="client_id"):
        MqttConfig(client_id="has/slash")


def test_validate_config_command(tmp_path, capsys):
    path = write(tmp_path, MINIMAL_EDGE)
    assert main(["run", "--config", str(path), "--validate-config"]) == 0
    assert "valid" in capsys.readouterr().out
    bad = write(tmp_path, MINIMAL_EDGE + "  hots: x\n", "bad.yaml")
    assert main(["run", "--config", str(bad), "--validate-config"]) == 1
    assert "mqtt.hots: unknown key" in capsys.readouterr().err
    offshore = write(tmp_path, "mqtt: {client_id: dec-1}\noutput: {folder: out}\n", "offshore.yaml")
    assert main(["subscribe", "--config", str(offshore), "--validate-config"]) == 0
    assert main(["subscribe", "--config", str(offshore.with_name("none.yaml")), "--validate-config"]) == 1


def test_dump_yaml_loads_back_equal(tmp_path):
    config = load_edge_config(DEPLOY / "edge.yaml")
    copy = write(tmp_path, dump_yaml(config), "copy.yaml")
    assert load_edge_config(copy) == config
    offshore = load_offshore_config(DEPLOY / "offshore.yaml")
    assert load_offshore_config(write(tmp_path, dump_yaml(offshore), "off.yaml")) == offshore
