"""Which requests the batch router claims: batch paths only, never a live endpoint."""

from __future__ import annotations

import pytest

from anygate.ops.mock_provider.batch_http import BatchRoute, resolve


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/v1/models"),
        ("POST", "/v1beta/models/gemini-2.0-flash:generateContent"),
        ("POST", "/v1beta/models/gemini-2.0-flash:batchEmbedContents"),
        ("POST", "/v1/models/gemini-2.0-flash:batchEmbedContents"),
    ],
)
def test_live_endpoints_are_left_to_the_live_router(method: str, path: str) -> None:
    assert resolve(method, path, gemini_credentials=False) is None
    assert resolve(method, path, gemini_credentials=True) is None


@pytest.mark.parametrize(
    ("method", "path", "gemini", "expected"),
    [
        ("POST", "/v1/files", False, BatchRoute("openai", "files_create")),
        (
            "GET",
            "/v1/files/file-1/content",
            False,
            BatchRoute("openai", "files_content", None, "file-1"),
        ),
        ("DELETE", "/v1/batches/b1", False, BatchRoute("openai", "method_not_allowed", None, "b1")),
        (
            "GET",
            "/v1/batches/b1/cancel",
            False,
            BatchRoute("openai", "method_not_allowed", None, "b1"),
        ),
        (
            "POST",
            "/v1/batches/b1/cancel",
            False,
            BatchRoute("openai", "batches_cancel", None, "b1"),
        ),
        ("GET", "/v1/files", True, BatchRoute("gemini", "gfiles_list", version="v1")),
        (
            "POST",
            "/v1beta/models/m:batchGenerateContent",
            True,
            BatchRoute("gemini", "batch_generate", "m"),
        ),
        (
            "POST",
            "/v1beta/models/m:asyncBatchEmbedContent",
            True,
            BatchRoute("gemini", "batch_embed_async", "m"),
        ),
        (
            "POST",
            "/v1beta/batches/x:cancel",
            True,
            BatchRoute("gemini", "gbatches_cancel", None, "x"),
        ),
        ("POST", "/v1beta/batches/x:pause", True, BatchRoute("gemini", "not_found")),
        ("POST", "/upload/v1beta/files", True, BatchRoute("gemini", "gfiles_upload")),
        (
            "GET",
            "/download/v1beta/files/f1:download",
            True,
            BatchRoute("gemini", "gfiles_download", None, "f1"),
        ),
    ],
)
def test_batch_paths_map_to_their_endpoint(
    method: str, path: str, gemini: bool, expected: BatchRoute
) -> None:
    assert resolve(method, path, gemini_credentials=gemini) == expected
