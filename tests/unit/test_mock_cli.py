"""The `mock-provider` command's option handling, without starting a server."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from anygate.ops.mock_provider import MockSettings, mock_provider_command
from anygate.ops.mock_provider import cli as cli_module


def test_command_is_named_for_the_anygate_group() -> None:
    assert mock_provider_command.name == "mock-provider"


def test_every_setting_has_an_option() -> None:
    options = {param.name for param in mock_provider_command.params}

    assert set(MockSettings.model_fields) <= options


def test_invalid_setting_is_a_usage_error_naming_the_option() -> None:
    result = CliRunner().invoke(mock_provider_command, ["--chunk-count", "0"])

    assert result.exit_code == 2
    assert "--chunk-count" in result.output


def test_options_become_settings_passed_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[tuple[str, int, MockSettings]] = []
    monkeypatch.setattr(
        cli_module, "serve", lambda host, port, settings: served.append((host, port, settings))
    )

    result = CliRunner().invoke(
        mock_provider_command,
        ["--port", "9999", "--latency-ms", "5", "--fault", "hang", "--api-key", "s"],
    )

    assert result.exit_code == 0, result.output
    assert served == [("127.0.0.1", 9999, MockSettings(latency_ms=5, fault="hang", api_key="s"))]
