"""A loopback server speaking the OpenAI chat-completions API (``POST /v1/chat/completions``,
``GET /v1/models``), as Ollama, vLLM, LM Studio and OpenAI itself do, for the ``openai``
translation provider's tests.

It answers as an ideal translation model would: the user message is a JSON object (or
array) of texts, and the answer repeats that structure with each text replaced by its
translation from a table. Faults make it answer as real models and servers misbehave:

    hang, slow         no answer / an answer after ``delay`` seconds
    500, 429           HTTP errors (429 with ``Retry-After: retry_after``)
    count              one item dropped (the last)
    merge              the first two items merged into one
    extra              one item added
    prose              prose instead of JSON ("Sure! Here are the translations: ...")
    chatter            the right JSON with chatter around it (and in a ```json fence)
    ambiguous          two different JSON objects in one answer
    echo               every text given back untranslated
    echo_first         the first text given back untranslated, the others translated
    refuse_first       the first text replaced by a refusal
    truncated          the answer cut off (finish_reason "length")
    obey               an instruction inside a text is obeyed: a text saying "ignore
                       previous instructions" makes the answer a single "OK" item

    with OpenAIServer.from_jsonl(DEV / "translations.jsonl") as llm:
        OpenAI(base_url=llm.url, api_key="k").chat.completions.create(...)
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from loopback import JSON_TYPE, LoopbackServer, _FaultSchedule, _Handler

OpenAIFault = Literal["hang", "slow", "500", "429", "count", "merge", "extra", "prose", "chatter",
                      "ambiguous", "echo", "echo_first", "refuse_first", "truncated", "obey"]
OpenAIFaultPlan = OpenAIFault | None | Sequence[OpenAIFault | None] | Callable[[int], OpenAIFault | None]

REFUSAL = "I'm sorry, but I can't help with that."


class OpenAIServer(LoopbackServer):
    """Chat completions from a table (source, target, text) -> translation.

    Counters cover every chat-completions request, whatever the answer: ``requests``,
    ``characters`` (the texts' characters), ``texts`` (every text received, in order),
    ``batches`` (the texts of each request), ``messages`` (each request's messages),
    ``bodies`` (each request's JSON body) and ``tokens`` (prompt and completion tokens
    reported in ``usage``: one token per 4 characters, rounded up)."""

    def __init__(self, table: Mapping[tuple[str, str, str], str] | None = None, *,
                 models: Sequence[str] = ("loopback-model",), target: str = "en", api_key: str | None = None,
                 delay: float = 1.0, retry_after: int = 1, json_mode: bool = True) -> None:
        """
        table: (source, target, text) -> translation; a text not in it comes back as
            "[target] text".
        models: the models /v1/models lists; any other gets 404 model_not_found.
        target: the language the model translates into.
        api_key: when set, requests without ``Authorization: Bearer <api_key>`` get 401.
        delay: seconds the "slow" fault waits before answering.
        retry_after: the Retry-After seconds of the "429" fault.
        json_mode: False answers a request with ``response_format`` json_object with 400,
            as LM Studio does.
        """
        super().__init__()
        self.models = list(models)
        self.target = target
        self.api_key = api_key
        self.delay = delay
        self.retry_after = retry_after
        self.json_mode = json_mode
        self._table = {(t, text): translation for (_s, t, text), translation in (table or {}).items()}
        self.requests = 0
        self.characters = 0
        self.texts: list[str] = []
        self.batches: list[list[str]] = []
        self.messages: list[list[dict[str, Any]]] = []
        self.bodies: list[dict[str, Any]] = []
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._faults = _FaultSchedule(get_args(OpenAIFault), "OpenAI")
        self._lock = threading.Lock()
        self._ids = 0

    @classmethod
    def from_jsonl(cls, path: str | Path, extra: Mapping[tuple[str, str, str], str] | None = None,
                   **kwargs: Any) -> OpenAIServer:
        """A (not yet started) server whose table is the rows {source, target, text,
        translation}, and ``extra``."""
        table: dict[tuple[str, str, str], str] = dict(extra or {})
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                table[row["source"], row["target"], row["text"]] = row["translation"]
        return cls(table, **kwargs)

    @property
    def url(self) -> str:
        """The API base, ``http://127.0.0.1:PORT/v1/``."""
        return self.base_url + "/v1/"

    @property
    def fault(self) -> OpenAIFaultPlan:
        return self._faults.plan  # type: ignore[no-any-return]

    @fault.setter
    def fault(self, plan: OpenAIFaultPlan) -> None:
        self._faults.set(plan)

    def translation(self, text: str) -> str:
        return self._table.get((self.target, text), f"[{self.target}] {text}")

    # -- serving

    def _handle(self, h: _Handler) -> None:
        route = urlsplit(h.path).path.rstrip("/")
        body = h.read_body()
        if self.api_key is not None and h.headers.get("Authorization") != f"Bearer {self.api_key}":
            _error(h, 401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
            return
        if route == "/v1/models" and h.command == "GET":
            h.reply_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "loopback"} for m in self.models]})
            return
        if route != "/v1/chat/completions":
            _error(h, 404, f"Unknown request URL: {h.command} {route}", "invalid_request_error", None)
            return
        if h.command != "POST":
            _error(h, 405, "Method Not Allowed", "invalid_request_error", None)
            return
        try:
            request = json.loads(body)
            messages = request["messages"]
            user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        except (ValueError, KeyError, TypeError, StopIteration):
            _error(h, 400, "We could not parse the JSON body of your request.", "invalid_request_error", None)
            return
        items = _items(user)
        texts = list(items.values()) if isinstance(items, dict) else list(items or [])
        with self._lock:
            self.requests += 1
            self.characters += sum(len(t) for t in texts)
            self.texts.extend(texts)
            self.batches.append(texts)
            self.messages.append(messages)
            self.bodies.append(request)
        if request.get("model") not in self.models:
            _error(h, 404, f"The model `{request.get('model')}` does not exist.", "invalid_request_error",
                   "model_not_found")
            return
        if not self.json_mode and request.get("response_format"):
            _error(h, 400, "'response_format.type' must be 'json_schema'", "invalid_request_error", None)
            return
        fault = self._faults.next()
        if fault == "hang":
            h.wait_for_stop()
            return
        if fault == "slow" and h.server.stopping.wait(self.delay):
            h.close_connection = True
            return
        if fault == "429":
            _error(h, 429, "Rate limit reached for requests", "requests", "rate_limit_exceeded",
                   {"Retry-After": str(self.retry_after)})
            return
        if fault == "500":
            _error(h, 500, "The server had an error while processing your request.", "server_error", None)
            return
        content, finish = self._answer(items, fault)
        prompt = "".join(str(m.get("content", "")) for m in messages)
        usage = {"prompt_tokens": math.ceil(len(prompt) / 4), "completion_tokens": math.ceil(len(content) / 4)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        with self._lock:
            self._ids += 1
            self.prompt_tokens += usage["prompt_tokens"]
            self.completion_tokens += usage["completion_tokens"]
            ident = self._ids
        h.reply_json(200, {
            "id": f"chatcmpl-{ident}", "object": "chat.completion", "created": int(time.time()),
            "model": request["model"], "system_fingerprint": "loopback",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "logprobs": None, "finish_reason": finish}],
            "usage": usage})

    def _answer(self, items: dict[str, str] | list[str] | None, fault: str | None) -> tuple[str, str]:
        """(content, finish_reason) of the answer to ``items`` under ``fault``."""
        if items is None:  # not JSON: what a model says to a plain message
            return "Please send the texts to translate.", "stop"
        keys = list(items) if isinstance(items, dict) else list(range(len(items)))
        source = [items[k] for k in keys]  # type: ignore[index]
        out = [self.translation(t) for t in source]
        if fault == "echo":
            out = list(source)
        elif fault == "echo_first" and out:
            out[0] = source[0]
        elif fault == "refuse_first" and out:
            out[0] = REFUSAL
        elif fault == "obey" and any("ignore previous instructions" in t.lower() for t in source):
            keys, out = keys[:1], ["OK"]
        if fault == "count" and out:
            keys, out = keys[:-1], out[:-1]
        elif fault == "merge" and len(out) > 1:
            keys, out = [keys[0], *keys[2:]], [f"{out[0]} {out[1]}", *out[2:]]
        elif fault == "extra":
            keys, out = [*keys, str(len(keys) + 1) if isinstance(items, dict) else len(keys)], [*out, "Also:"]
        data: Any = dict(zip((str(k) for k in keys), out, strict=True)) if isinstance(items, dict) else out
        text = json.dumps(data, ensure_ascii=False)
        if fault == "prose":
            return "Sure! Here are the translations:\n" + "\n".join(f"{i + 1}. {t}" for i, t in enumerate(out)), "stop"
        if fault == "chatter":
            return (f"Sure! Here is the translation:\n```json\n{text}\n```\n"
                    "Let me know if you need anything else.", "stop")
        if fault == "ambiguous":
            other = dict(zip((str(k) for k in keys), source, strict=False)) if isinstance(items, dict) else source
            return f"{text}\nOr, more literally:\n{json.dumps(other, ensure_ascii=False)}", "stop"
        if fault == "truncated":
            return text[: max(1, len(text) // 2)], "length"
        return text, "stop"


def _items(content: Any) -> dict[str, str] | list[str] | None:
    """The texts of a user message: a JSON object or array of strings, else None."""
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    try:
        data = json.loads(content)
    except (TypeError, ValueError):
        return None
    if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
        return {str(k): v for k, v in data.items()}
    if isinstance(data, list) and all(isinstance(v, str) for v in data):
        return data
    return None


def _error(h: _Handler, status: int, message: str, kind: str, code: str | None,
           headers: Mapping[str, str] | None = None) -> None:
    """An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    h.reply_json(status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers)


__all__ = ["JSON_TYPE", "OpenAIFault", "OpenAIServer", "REFUSAL"]
