from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_env_prefix_and_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWIRE_KAFKA_BOOTSTRAP", "k:1")
    monkeypatch.setenv("NEWSWIRE_BATCH_SIZE", "7")
    settings = Settings()
    assert settings.kafka_bootstrap == "k:1" and settings.batch_size == 7
    with pytest.raises(ValidationError):
        settings.batch_size = 8  # type: ignore[misc]


def test_secrets_are_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWIRE_ELASTICSEARCH_API_KEY", "s3cr3t-key")
    settings = Settings()
    assert "s3cr3t-key" not in repr(settings) and "s3cr3t-key" not in str(settings.model_dump())
    assert settings.elasticsearch_api_key is not None
    assert settings.elasticsearch_api_key.get_secret_value() == "s3cr3t-key"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    for name, field in Settings.model_fields.items():
        variable = f"NEWSWIRE_{name.upper()}"
        assert field.description and field.description.startswith(variable), name
        assert f"`{variable}`" in text, f"{variable} missing from the README configuration table"


def test_readme_configuration_table_is_generated_from_settings() -> None:
    from workshop.builders.settings_table import markdown_table

    assert markdown_table() in README.read_text(), "README table is stale: run `make docs`"


@pytest.mark.parametrize(
    "value", ["REPLACE-ME-writer-password", "replace-me", "changeme", "  ", ""]
)
def test_placeholder_secrets_refuse_to_start(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NEWSWIRE_ELASTICSEARCH_PASSWORD", value)
    with pytest.raises(ValidationError, match="NEWSWIRE_ELASTICSEARCH_PASSWORD is a placeholder"):
        Settings()


def test_every_placeholder_in_the_k8s_secrets_is_refused() -> None:
    import yaml

    from pipeline.settings import is_placeholder

    secrets = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "secret.yaml"
    docs = [d for d in yaml.safe_load_all(secrets.read_text()) if d]
    passwords = [value for d in docs for key, value in d["stringData"].items() if "PASSWORD" in key]
    assert passwords and all(is_placeholder(p) for p in passwords)
    assert not is_placeholder("a-long-random-password")
