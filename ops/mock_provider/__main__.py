"""`python -m anygate.ops.mock_provider`, for tests that start the mock as a subprocess."""

from anygate.ops.mock_provider.cli import mock_provider_command

if __name__ == "__main__":
    mock_provider_command(prog_name="python -m anygate.ops.mock_provider")
