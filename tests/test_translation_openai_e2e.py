"""The ``openai`` provider through the real CLI (``aggregator run --once`` in a subprocess)
on the matchbench dev feeds over loopback: a post's texts go in one request, a second run
sends nothing, ``status`` shows what each provider was sent, and a model that never
answers costs the cycle one timeout while the next provider finishes it.
``bench/bench_llm_translation.py`` prints the same figures."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from conftest import DEV, aggregator_cmd
from openai_server import OpenAIServer
from test_pipeline_e2e import ALIASES, NAMES, OUTLETS, translations
from test_translation_e2e import dev_feeds, english_titles, run

# Generous: a working model must never time out on a loaded machine; the one that never
# answers costs exactly one of them.
TIMEOUT = 8.0
BLOG_POSTS = 40
# The dev set's 参考 headlines in other languages than Japanese and English, which the
# matcher has translated (its table has no rows for them): what an ideal model answers.
FOREIGN = {
    ("auto", "en", "Власти Кубани сообщили об атаке беспилотников на НПЗ в Славянске-на-Кубани"):
        "Kuban authorities report a drone attack on the refinery in Slavyansk-on-Kuban",
    ("auto", "en", "Papperger: „Wir bauen die Munitionskapazität weiter aus“"):
        "Papperger: \"We keep expanding our ammunition capacity\"",
    ("auto", "en", "Белоусов пообещал не менять систему управления войсками"):
        "Belousov promised not to change the system of command of the troops",
}


def write_config(path: Path, feeds: object, *providers: str, timeout: float = TIMEOUT) -> None:
    lines = ["storage: {url: 'sqlite:///data/store.sqlite3'}",
             "output: {dir: output, max_entries: 1000, include: all}",
             "fetch: {allow_private_networks: true}" if _has_private_guard() else "",
             "translation:", "  target: en", f"  timeout: {timeout:g}s", "  providers:"]
    lines += [f"    - {p}" for p in providers]
    blog = feeds.url("/blog.xml")  # type: ignore[attr-defined]
    lines += ["sources:", f"  - {{id: blog, name: 軍事ニュース解説ブログ, url: '{blog}', role: blog, language: ja}}"]
    for o in OUTLETS:
        lines.append(f"  - {{id: {o}, name: '{NAMES[o]}', url: '{feeds.url(f'/{o}.xml')}', role: outlet,"  # type: ignore[attr-defined]
                     f" language: en, aliases: {json.dumps(ALIASES[o], ensure_ascii=False)}}}")
    path.write_text("\n".join(line for line in lines if line) + "\n", encoding="utf-8")


def _has_private_guard() -> bool:
    from aggregator.config import FetchConfig

    return "allow_private_networks" in FetchConfig.model_fields


def openai(server: OpenAIServer, model: str = "loopback-model", extra: str = "") -> str:
    return f"{{provider: openai, url: '{server.url}', model: '{model}'{extra}}}"


def status(cfg: Path) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(aggregator_cmd("status", "--json", "--config", str(cfg)), capture_output=True, text=True)
    return json.loads(out.stdout)["translation"]  # type: ignore[no-any-return]


def test_a_posts_texts_go_in_one_request_and_a_second_run_sends_nothing(tmp_path: Path) -> None:
    with dev_feeds() as feeds, OpenAIServer.from_jsonl(DEV / "translations.jsonl", FOREIGN) as llm:
        cfg = tmp_path / "aggregator.yaml"
        write_config(cfg, feeds, openai(llm))
        first = run(cfg)
        assert first.returncode == 0, first.stderr
        texts = len(llm.texts)
        # a post's title, lead and paragraphs together: one request per post for the feed,
        # and one per text the matcher needed in English first (47 requests, 207 texts)
        assert BLOG_POSTS <= llm.requests <= 2 * BLOG_POSTS and texts >= 4 * llm.requests
        assert len(set(llm.texts)) == texts  # no text sent twice
        m = re.search(r"(\d+) requests, (\d+) characters sent to translators", first.stdout)
        assert m and (int(m.group(1)), int(m.group(2))) == (llm.requests, llm.characters), first.stdout
        st = status(cfg)
        assert (st["done"], st["pending"], st["failed"]) == (BLOG_POSTS, 0, 0)
        assert [(p["name"], p["state"]) for p in st["providers"]] == [("openai:loopback-model", "up")]
        usage = st["usage"]["openai:loopback-model"]
        assert usage["cycle"] == usage["total"] == {
            "requests": llm.requests, "characters": llm.characters,
            "prompt_tokens": llm.prompt_tokens, "completion_tokens": llm.completion_tokens}
        human = subprocess.run(aggregator_cmd("status", "--config", str(cfg)), capture_output=True, text=True).stdout
        assert (f"sent to openai:loopback-model: last cycle {llm.requests} requests, {llm.characters:,} characters, "
                f"{llm.prompt_tokens:,} + {llm.completion_tokens:,} tokens") in human

        sent = (llm.requests, llm.characters)
        second = run(cfg, "--all")  # a new process: only the store remembers
        assert second.returncode == 0, second.stderr
        assert (llm.requests, llm.characters) == sent
        usage = status(cfg)["usage"]["openai:loopback-model"]
        assert usage["cycle"]["requests"] == 0 and usage["total"]["requests"] == sent[0]
    titles = english_titles(tmp_path / "output")
    posts = [t for link, t in titles.items() if link.startswith("https://blog.example.jp/")]
    assert len(posts) == BLOG_POSTS and set(posts) <= set(translations().values())


def test_a_model_that_never_answers_costs_one_timeout_and_the_next_model_finishes(tmp_path: Path) -> None:
    with dev_feeds() as feeds, OpenAIServer() as slow, \
            OpenAIServer.from_jsonl(DEV / "translations.jsonl", FOREIGN, models=["small"]) as good:
        slow.fault = "hang"
        cfg = tmp_path / "aggregator.yaml"
        write_config(cfg, feeds, openai(slow), openai(good, "small"))
        t0 = time.monotonic()
        r = run(cfg)
        elapsed = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert slow.requests == 1 and BLOG_POSTS <= good.requests <= 2 * BLOG_POSTS
        assert elapsed < TIMEOUT * 3 + 60, elapsed
        st = status(cfg)
        assert st["done"] == BLOG_POSTS and st["entries_by_provider"] == {"openai:small": BLOG_POSTS}
        assert [(p["name"], p["state"]) for p in st["providers"]] == [
            ("openai:loopback-model", "down"), ("openai:small", "up")]
        assert "timed out" in st["providers"][0]["error"]
