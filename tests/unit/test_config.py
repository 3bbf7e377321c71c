"""Settings: names, defaults, normalisation and one-line errors."""

from pathlib import Path

import pytest

from test_coordinator.config import Environment, SettingsError, load_settings

VARIABLES = [
    "SERVICE_NAME",
    "SERVICE_INSTANCE_NAME",
    "ENVIRONMENT",
    "LOG_LEVEL",
    "HTTP_HOST",
    "HTTP_PORT",
    "GRPC_PORT",
    "POSTGRES_URL",
    "REDIS_URL",
    "DATA_DIR",
    "POSTGRES_SCHEMA",
    "REDIS_NAMESPACE",
]


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults() -> None:
    settings = load_settings()

    assert settings.service_name == "test-coordinator"
    assert settings.service_instance_name == "test-coordinator"
    assert settings.environment is Environment.DEVELOPMENT
    assert (settings.http_host, settings.http_port, settings.grpc_port) == (
        "127.0.0.1",
        8080,
        50051,
    )
    assert (settings.database_schema, settings.key_namespace) == ("test", "test")
    assert settings.version


def test_named_instance_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_INSTANCE_NAME", "test-coordinator-Chaos1")
    monkeypatch.setenv("ENVIRONMENT", "docker")
    monkeypatch.setenv("LOG_LEVEL", "debug")

    settings = load_settings()

    assert settings.database_schema == "test_coordinator_chaos1"
    assert settings.key_namespace == "test_coordinator:Chaos1"
    assert settings.environment.wants_json_logs
    assert settings.log_level == "DEBUG"
    assert settings.instance_data_dir == Path("data/test-coordinator-Chaos1")


def test_explicit_schema_and_namespace_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_INSTANCE_NAME", "test-coordinator-Chaos1")
    monkeypatch.setenv("POSTGRES_SCHEMA", "chaos_lab")
    monkeypatch.setenv("REDIS_NAMESPACE", "lab")

    settings = load_settings()

    assert (settings.database_schema, settings.key_namespace) == ("chaos_lab", "lab")


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SERVICE_INSTANCE_NAME=test-coordinator-Env\nHTTP_PORT=9999\n")

    settings = load_settings()

    assert (settings.service_instance_name, settings.http_port) == ("test-coordinator-Env", 9999)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LOG_LEVEL", "loud", "LOG_LEVEL: 'loud' is not a log level; allowed: DEBUG, INFO"),
        ("SERVICE_INSTANCE_NAME", "bad name!", "SERVICE_INSTANCE_NAME: 'bad name!' is not allowed"),
        ("ENVIRONMENT", "staging", "ENVIRONMENT: 'staging' is not allowed; allowed: development"),
        ("HTTP_PORT", "eighty", "HTTP_PORT: "),
        ("POSTGRES_SCHEMA", "Bad-Schema", "POSTGRES_SCHEMA: 'Bad-Schema' is not a PostgreSQL"),
        (
            "POSTGRES_URL",
            "mysql://u:secret@h/db",
            "POSTGRES_URL: scheme 'mysql' is not allowed; allowed: postgresql://",
        ),
        ("REDIS_URL", "http://x", "REDIS_URL: scheme 'http' is not allowed; allowed: redis://"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL: a URL without a scheme is not allowed"),
    ],
)
def test_invalid_values_give_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as caught:
        load_settings()

    message = str(caught.value)
    assert message.startswith(expected)
    assert "\n" not in message
    assert "secret" not in message  # a URL may carry a password


def test_reserved_instance_name_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_INSTANCE_NAME", "test")

    with pytest.raises(SettingsError, match=r"^SERVICE_INSTANCE_NAME: .*reserved"):
        load_settings()


def test_nothing_is_built_at_import() -> None:
    import test_coordinator.config as config

    assert not [v for v in vars(config).values() if isinstance(v, config.Settings)]
