"""Optional language-model providers. The chain never needs one.

:class:`OpenAICompatibleProvider` talks to any server with the OpenAI chat completions API
(vLLM, llama.cpp's server, Ollama, a hosted endpoint) and is used as the ``llm_complete``
activity handler: live, its answers are recorded; in replay, the recording is fed back and no
request is made. Every failure (no server, timeout, HTTP error, a body that is not what the
API promises) becomes a status, never an exception, so the role falls back to its
deterministic answer.
"""

from __future__ import annotations

from typing import Any

import httpx

from sreagent.runtime import LlmConfig


class OpenAICompatibleProvider:
    """POST ``{base_url}/chat/completions``; returns ``(status, {"content", "model"})``."""

    def __init__(self, config: LlmConfig, *, transport: httpx.BaseTransport | None = None):
        self.config = config
        headers = {"Content-Type": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._client = httpx.Client(base_url=config.base_url.rstrip("/") + "/",
                                    timeout=config.timeout_s, headers=headers,
                                    transport=transport)

    def close(self) -> None:
        self._client.close()

    def __call__(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        try:
            response = self._client.post("chat/completions", json=request)
        except httpx.TimeoutException:
            return "timeout", {"reason": f"no answer within {self.config.timeout_s}s"}
        except httpx.HTTPError as err:
            return "unavailable", {"reason": f"{type(err).__name__}: {err}"[:500]}
        if response.status_code != 200:
            return "error", {"reason": f"HTTP {response.status_code}",
                             "body": response.text[:500]}
        try:
            body = response.json()
            content = body["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return "invalid", {"reason": "the answer is not a chat completion",
                               "body": response.text[:500]}
        if not isinstance(content, str):
            return "invalid", {"reason": "message content is not text"}
        return "ok", {"content": content, "model": str(body.get("model", self.config.model))}


__all__ = ["OpenAICompatibleProvider"]
