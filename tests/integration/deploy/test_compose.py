"""docker-compose file, Dockerfiles and .env.example, validated without a container engine.

``docker-compose config`` (Debian's docker-compose 1.29) validates the file against the Compose
schema and interpolates it offline; the tests then read the resolved configuration it prints.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from deploy.generate import DEPLOY
from schemas.topics import TOPICS

REPO = DEPLOY.parent
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
SECRETS = ("CLICKHOUSE_PASSWORD", "CLICKHOUSE_GRAFANA_PASSWORD", "GRAFANA_ADMIN_PASSWORD")


def _docker_compose() -> str:
    binary = shutil.which("docker-compose") or "/usr/bin/docker-compose"
    if not Path(binary).exists():
        pytest.skip("docker-compose (Debian package docker-compose) is not installed")
    return binary


def _env_file(tmp_path: Path, fill_secrets: bool) -> Path:
    lines = ENV_EXAMPLE.read_text().splitlines()
    if fill_secrets:
        lines = [f"{line}compose-test-{i}" if line.endswith("=") else line for i, line in enumerate(lines)]
    path = tmp_path / "env"
    path.write_text("\n".join(lines) + "\n")
    return path


def _compose(tmp_path: Path, *args: str, fill_secrets: bool = True) -> subprocess.CompletedProcess[str]:
    command = [_docker_compose(), "--env-file", str(_env_file(tmp_path, fill_secrets)), "-f", str(COMPOSE), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = _compose(tmp_path_factory.mktemp("compose"), "config")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_config_validates(tmp_path: Path) -> None:
    result = _compose(tmp_path, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    result = _compose(tmp_path, "config", "-q", fill_secrets=False)
    assert result.returncode != 0
    assert "CLICKHOUSE_PASSWORD" in result.stderr


def test_env_example_leaves_every_secret_blank() -> None:
    values = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if "=" in line and line[0] != "#")
    assert {name: values[name] for name in SECRETS} == dict.fromkeys(SECRETS, "")
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    assert used <= set(values), f"variables missing from .env.example: {sorted(used - set(values))}"


_SECRET_SETTING = re.compile(r"^[\s-]*[\"']?(\w*(?:password|secret|token)\w*)[\"']?\s*[:=]\s*(.*)$", re.IGNORECASE)
_SECRET_XML = re.compile(r"<(password|secret|token)\w*>[^<]+<", re.IGNORECASE)
# keys that name where a secret lives, not the secret itself
_REFERENCES = {"secretname", "secretkeyref", "secrettargetref", "securejsondata"}


def _literal_secrets(path: Path, root: Path = DEPLOY) -> list[str]:
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        setting = _SECRET_SETTING.match(line)
        value = setting[2].strip().strip("\"'") if setting else ""
        literal = setting is not None and setting[1].lower() not in _REFERENCES and value and value[0] not in "$<{"
        if literal or _SECRET_XML.search(line):
            found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_no_literal_secrets_in_deploy_files() -> None:
    texts = {".yml", ".yaml", ".xml", ".json", ".sh", ".sql", ".example", ".Dockerfile"}
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in texts and "__pycache__" not in p.parts]
    assert len(files) > 10
    assert [hit for path in files for hit in _literal_secrets(path)] == []


def test_the_secret_scan_sees_a_literal_password(tmp_path: Path) -> None:
    leaky = DEPLOY / "k8s" / "configmap.yaml"
    text = leaky.read_text() + "  DRIFTSCOPE_KAFKA__SASL_PASSWORD: hunter2\n"
    copy = tmp_path / "configmap.yaml"
    copy.write_text(text)
    line = len(text.splitlines())
    assert _literal_secrets(copy, root=tmp_path) == [f"configmap.yaml:{line}: DRIFTSCOPE_KAFKA__SASL_PASSWORD: hunter2"]


def _binds(service: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts of a resolved service as target -> host path (1.29 prints them as strings)."""
    binds = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                binds[volume["target"]] = Path(volume["source"])
        elif volume.startswith("/"):
            source, target = volume.split(":")[:2]
            binds[target] = Path(source)
    return binds


def test_services_and_their_roles(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == {"kafka", "topic-init", "clickhouse", "grafana", "worker", "trainer"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_PLUGINS_PREINSTALL_SYNC"]


def test_host_ports_bind_to_loopback_only(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"


def test_worker_scales_out(resolved: dict[str, Any]) -> None:
    worker = resolved["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] == ["worker"]
    assert worker["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
    assert worker["environment"]["DRIFTSCOPE_CLICKHOUSE_URL"].startswith("clickhouse://driftscope:compose-test-")
    assert worker["environment"]["DRIFTSCOPE_CLICKHOUSE_URL"].endswith("@clickhouse:9000/driftscope")


def test_trainer_reserves_a_gpu_and_no_store(resolved: dict[str, Any]) -> None:
    trainer = resolved["services"]["trainer"]
    devices = trainer["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert trainer["command"] == ["trainer"]
    assert "DRIFTSCOPE_CLICKHOUSE_URL" not in trainer["environment"]


def test_env_names_are_driftscope_settings(resolved: dict[str, Any]) -> None:
    from driftscope.settings import Settings

    for name in ("worker", "trainer"):
        env = {k: str(v) for k, v in resolved["services"][name]["environment"].items()}
        settings = Settings(**_as_settings(env))
        assert settings.kafka.bootstrap_servers == "kafka:9092"
        assert settings.blob_url == "/var/lib/driftscope/blobs"


def _as_settings(env: dict[str, str]) -> dict[str, Any]:
    """DRIFTSCOPE_A__B=v -> {"a": {"b": v}}, failing on a name Settings does not know."""
    from driftscope.settings import KafkaSettings, Settings

    values: dict[str, Any] = {}
    for name, value in env.items():
        assert name.startswith("DRIFTSCOPE_"), name
        path = name.removeprefix("DRIFTSCOPE_").lower().split("__")
        known = KafkaSettings.model_fields if path[0] == "kafka" else Settings.model_fields
        assert path[-1] in known, f"{name} is not a driftscope setting"
        target = values.setdefault(path[0], {}) if len(path) == 2 else values
        target[path[-1]] = value
    return values


def test_clickhouse_applies_the_generated_schema(resolved: dict[str, Any]) -> None:
    targets = _binds(resolved["services"]["clickhouse"])
    initdb = targets["/docker-entrypoint-initdb.d"]
    assert (initdb / "001-driftscope-schema.sql").is_file()
    assert targets["/etc/clickhouse-server/users.d/grafana.xml"].is_file()


def test_topic_init_runs_the_generated_script(resolved: dict[str, Any]) -> None:
    init = resolved["services"]["topic-init"]
    assert init["image"] == resolved["services"]["kafka"]["image"]
    sources = _binds(init)
    assert sources["/deploy/create-topics.sh"] == DEPLOY / "kafka" / "create-topics.sh"
    assert init["entrypoint"] == ["/bin/sh", "/deploy/create-topics.sh"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert max(t.partitions for t in TOPICS.values()) == 6  # the worker replicas' useful ceiling


def test_grafana_mounts_its_provisioning(resolved: dict[str, Any]) -> None:
    volumes = _binds(resolved["services"]["grafana"])
    assert (volumes["/etc/grafana/provisioning"] / "datasources" / "clickhouse.yaml").is_file()
    assert (volumes["/var/lib/grafana/dashboards/driftscope"] / "driftscope.json").is_file()


# -- Dockerfiles --------------------------------------------------------------------------------

def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


@pytest.mark.parametrize("service", ["worker", "trainer"])
def test_build_points_at_a_dockerfile_with_its_ignore_file(resolved: dict[str, Any], service: str) -> None:
    build = resolved["services"][service]["build"]
    dockerfile = Path(build["context"]) / build["dockerfile"]
    assert dockerfile.is_file()
    assert Path(build["context"]) == REPO
    assert Path(f"{dockerfile}.dockerignore").is_file()  # keeps .venv and data out of the context


@pytest.mark.parametrize("name", ["serve", "train"])
def test_dockerfile_copies_what_exists_and_runs_unprivileged(name: str) -> None:
    steps = _instructions(DEPLOY / "docker" / f"{name}.Dockerfile")
    for instruction, args in steps:
        if instruction == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    users = [args for instruction, args in steps if instruction == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert ("ENTRYPOINT", '["driftscope"]') in steps


def test_serving_image_installs_the_serve_extra_only() -> None:
    installs = [args for op, args in _instructions(DEPLOY / "docker" / "serve.Dockerfile") if "pip install" in args]
    assert len(installs) == 1 and "[serve]" in installs[0] and "train" not in installs[0]
    assert "find_spec('torch') is not None" in installs[0]  # the build fails if torch sneaks in


def test_training_image_installs_cuda_torch() -> None:
    installs = [args for op, args in _instructions(DEPLOY / "docker" / "train.Dockerfile") if "pip install" in args]
    assert len(installs) == 1 and "[serve,train]" in installs[0]
    assert "sys.exit(torch.version.cuda is None)" in installs[0]  # a CPU-only wheel fails the build


def test_serve_extra_does_not_pull_torch() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    serving = [Requirement(r).name.lower() for r in project["dependencies"] + project["optional-dependencies"]["serve"]]
    assert "onnxruntime" in serving and not {"torch", "torchvision"} & set(serving)
