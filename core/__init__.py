"""The pure core shared by the API and the workers: request schemas and their validation,
OpenAI ⇄ Gemini translation, route planning, log redaction.

It sits between the two sides and the broker (docs/architecture.md, "Layers"): the API
checks a request here before queueing it, and the control plane checks a batch line with the
same code, so both refuse the same bodies the same way. Nothing here imports ``api``,
``workers`` or ``ops``.
"""
