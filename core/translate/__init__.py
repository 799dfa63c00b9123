"""Pure translation between OpenAI's chat/embeddings format and Gemini's, both directions.

No I/O here: the worker's Gemini adapter and the API's Gemini-compatible surface call these on
plain JSON objects. Every field is either translated or refused with ``UntranslatableFieldError``
naming it (docs/translation.md); docs/translation.md is the field-by-field table.
"""

from anygate.core.translate.chat_to_gemini import chat_request_to_gemini
from anygate.core.translate.chat_to_gemini_response import (
    ChatStreamToGemini,
    chat_response_to_gemini,
)
from anygate.core.translate.count_tokens import (
    count_is_valid,
    count_tokens_job_body,
    count_tokens_request,
)
from anygate.core.translate.embeddings import (
    embed_field_names,
    embeddings_request_to_gemini,
    gemini_embed_request_to_openai,
    gemini_embeddings_to_openai,
    openai_embeddings_to_gemini,
)
from anygate.core.translate.errors import UntranslatableFieldError
from anygate.core.translate.gemini_to_chat import GeminiStreamToChat, gemini_response_to_chat
from anygate.core.translate.gemini_to_openai_request import (
    CHAT_FIELD_NAMES,
    gemini_request_to_chat,
)

__all__ = [
    "CHAT_FIELD_NAMES",
    "ChatStreamToGemini",
    "GeminiStreamToChat",
    "UntranslatableFieldError",
    "chat_request_to_gemini",
    "chat_response_to_gemini",
    "count_is_valid",
    "count_tokens_job_body",
    "count_tokens_request",
    "embed_field_names",
    "embeddings_request_to_gemini",
    "gemini_embed_request_to_openai",
    "gemini_embeddings_to_openai",
    "gemini_request_to_chat",
    "gemini_response_to_chat",
    "openai_embeddings_to_gemini",
]
