"""A fake OpenAI- and Gemini-shaped upstream over real HTTP, for tests, the demo and benchmarks.

Provider endpoints: OpenAI `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`
(and `/v1/models/{id}`); Gemini under `/v1beta/` and `/v1/`: `models/{model}:generateContent`,
`:streamGenerateContent` (`?alt=sse` for SSE), `:embedContent`, `:batchEmbedContents`,
`:countTokens`, `GET models` and `GET models/{model}`.

Batch mode (`batch_http`): OpenAI `/v1/files` and `/v1/batches`; Gemini
`models/{model}:batchGenerateContent` and `:asyncBatchEmbedContent`, `batches`, `files` and the
resumable `/upload/.../files`.

Control endpoints under `/_mock/`: `faults` (GET, POST rules, DELETE), `batch_faults` (the same
for provider batches), `settings` (GET, POST a partial update), `requests` (GET `?limit=N`,
DELETE), `reset` (POST: start settings, no faults, empty log, no batches, rate limits uncharged)
and `health`.

Rate limits (`rate_limit_rpm`, `rate_limit_tpm` over `rate_limit_window_s`) are enforced per API
key and provider with an exact sliding window; refusals are 429s in each provider's own shape.
"""

from anygate.ops.mock_provider.app import create_app
from anygate.ops.mock_provider.cli import mock_provider_command
from anygate.ops.mock_provider.server import serve
from anygate.ops.mock_provider.settings import MockSettings

__all__ = ["MockSettings", "create_app", "mock_provider_command", "serve"]
