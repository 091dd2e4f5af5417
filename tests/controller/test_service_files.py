"""Every manifest and config example in service/ parses and says what it should; the
controller starts from the example config."""

from __future__ import annotations

import configparser
from pathlib import Path

import httpx
import pytest
import yaml

from sreagent.controller.settings import load_settings
from tests.controller.helpers import REPO, free_port, kill9, start_controller, wait_ready

SERVICE = REPO / "service"


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def test_every_yaml_and_toml_parses() -> None:
    import tomllib

    files = [*SERVICE.rglob("*.yaml"), *SERVICE.rglob("*.yml"), *SERVICE.rglob("*.toml")]
    assert len(files) >= 4
    for file in files:
        if file.suffix == ".toml":
            tomllib.loads(file.read_text())
        else:
            assert _docs(file), f"{file} is empty"


def test_kubernetes_manifests() -> None:
    objects = [d for f in sorted((SERVICE / "kubernetes").glob("*.yaml")) for d in _docs(f)]
    for obj in objects:
        assert {"apiVersion", "kind", "metadata"} <= set(obj), obj
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Deployment", "sreagent-controller") in kinds
    assert ("Service", "sreagent-controller") in kinds
    assert ("DaemonSet", "sreagent-collector") in kinds
    daemonset = next(o for o in objects if o["kind"] == "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostPID"] is True and pod["hostNetwork"] is True
    security = pod["containers"][0]["securityContext"]
    assert security["privileged"] is False and security["capabilities"]["drop"] == ["ALL"]
    assert {"BPF", "PERFMON", "SYSLOG"} <= set(security["capabilities"]["add"])
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # the embedded controller config is a valid one
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    embedded = yaml.safe_load(config["data"]["controller.yaml"])
    load_settings(None, **embedded)


def _console_scripts() -> set[str]:
    import tomllib

    return set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])


def test_the_collector_daemonset_configures_the_collector_through_its_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sreagent.collector.config import ENV_PREFIX
    from sreagent.collector.config import load_settings as load_collector_settings

    daemonset = next(
        d for d in _docs(SERVICE / "kubernetes" / "collector-daemonset.yaml")
        if d["kind"] == "DaemonSet"
    )
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][0] in _console_scripts()
    for var in container["env"]:
        assert var["name"].startswith(ENV_PREFIX), var["name"]
        source = var.get("valueFrom", {})
        value = var.get("value") or ("node-a" if "fieldRef" in source else "secret-token")
        monkeypatch.setenv(var["name"], value)
    settings = load_collector_settings(None)
    assert settings.collector_id == "node-a"
    assert settings.transport.endpoints == ["http://sreagent-controller.sreagent.svc:8080"]
    assert settings.transport.token is not None
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(settings.state_dir) in mounts  # the spool survives pod restarts on the node


def test_systemd_units() -> None:
    units = sorted((SERVICE / "systemd").glob("*.service"))
    assert {u.name for u in units} == {"sreagent-controller.service",
                                       "sreagent-collector.service"}
    for unit in units:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(unit)
        program = parser["Service"]["ExecStart"].split()[0]
        assert program.removeprefix("/usr/local/bin/") in _console_scripts(), program
        assert parser["Service"]["NoNewPrivileges"] == "yes"
        assert parser["Install"]["WantedBy"] == "multi-user.target"
    controller = configparser.ConfigParser(strict=False, interpolation=None)
    controller.read(SERVICE / "systemd" / "sreagent-controller.service")
    assert controller["Service"]["CapabilityBoundingSet"] == ""  # no privileges at all
    collector = configparser.ConfigParser(strict=False, interpolation=None)
    collector.read(SERVICE / "systemd" / "sreagent-collector.service")
    caps = set(collector["Service"]["CapabilityBoundingSet"].split())
    assert "CAP_BPF" in caps and "CAP_SYS_MODULE" not in caps
    from sreagent.collector.config import CollectorSettings

    default_state = CollectorSettings.model_fields["state_dir"].default
    assert collector["Service"]["ReadWritePaths"] == str(default_state)
    assert "/var/lib/" + collector["Service"]["StateDirectory"] == str(default_state)


def test_containerfile_runs_the_controller_unprivileged() -> None:
    text = (SERVICE / "Containerfile").read_text()
    assert "USER 10001" in text and '"serve", "--config"' in text


@pytest.mark.slow
def test_controller_starts_from_the_example_config(tmp_path: Path) -> None:
    example = SERVICE / "controller.example.yaml"
    config = yaml.safe_load(example.read_text())
    assert load_settings(example).auth.tokens  # the example as shipped is valid
    port = free_port()
    # Only the data folder moves: the shipped file is used as it is, port from the command line.
    proc = start_controller(example, port=port, env={"SREAGENT_DATA_DIR": str(tmp_path),
                                                     "SREAGENT_HOST": "127.0.0.1"},
                            log=tmp_path / "log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc=proc)
        headers = {"Authorization": "Bearer example-read-token"}
        status = httpx.get(f"{url}/api/v1/status", headers=headers, timeout=10).json()
        assert status["hot_state"]["limits"]["max_hosts"] == config["hot_state"]["max_hosts"]
        assert httpx.get(f"{url}/api/v1/status", timeout=10).status_code == 401
    finally:
        kill9(proc)
