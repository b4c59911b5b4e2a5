"""``aggregator eval-matching DIR``: precision and recall of the real pipeline on a
folder in the matchbench layout (feeds/, sources.yaml, gold.jsonl, translations.jsonl).

The feeds are served by a loopback HTTP server, the translations by a loopback
LibreTranslate-protocol server; a temporary config and store are made, and one full
cycle runs exactly as ``aggregator run --once`` would."""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from aggregator.app import Aggregator
from aggregator.config import load_config
from aggregator.exceptions import AggregatorError
from aggregator.running.cycle import run_cycle
from aggregator.running.explain import rematch
from aggregator.running.sampleserver import SampleServer, read_translations
from aggregator.store import Store


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": round(self.precision, 4),
                "recall": round(self.recall, 4), "f1": round(self.f1, 4)}


@dataclass
class Error:
    kind: str  # "FP" | "FN"
    case: str
    post: str
    article: str
    evidence: str


@dataclass
class EvalResult:
    overall: Counts = field(default_factory=Counts)
    cases: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    posts_per_case: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: list[Error] = field(default_factory=list)
    posts: int = 0
    articles: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"overall": self.overall.as_dict(), "posts": self.posts, "articles": self.articles,
                "seconds": round(self.seconds, 2),
                "cases": {c: {"posts": self.posts_per_case[c], **k.as_dict()} for c, k in sorted(self.cases.items())},
                "errors": [e.__dict__ for e in self.errors]}


def read_sources(directory: Path) -> list[dict[str, Any]]:
    path = directory / "sources.yaml"
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, Exception) as e:
        raise AggregatorError(f"{path}: cannot read: {e}") from None
    if isinstance(data, dict):
        data = data.get("feeds")
    if not isinstance(data, list):
        raise AggregatorError(f"{path}: expected a list of feeds (or a mapping with feeds:)")
    return data


def _slug(text: str) -> str:
    import re

    s = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")
    return s or "source"


def evaluate(directory: Path, *, translate: bool = True) -> EvalResult:
    directory = directory.resolve()
    sources = read_sources(directory)
    gold_path = directory / "gold.jsonl"
    try:
        gold = [json.loads(line) for line in gold_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        raise AggregatorError(f"{gold_path}: cannot read: {e}") from None
    t0 = time.monotonic()
    table = {}
    if translate and (directory / "translations.jsonl").exists():
        table = read_translations(directory / "translations.jsonl")
    with tempfile.TemporaryDirectory(prefix="aggregator-eval-") as tmp, SampleServer(table) as server:
        cfg_sources = []
        for s in sources:
            path = "/" + str(s["file"]).lstrip("/")
            url = server.add_file(path, directory / s["file"])
            entry: dict[str, Any] = {"id": _slug(str(s["id"])), "name": s.get("name") or s["id"],
                                     "url": url, "role": s.get("role", "outlet"),
                                     "language": s.get("language", "en")}
            if s.get("aliases"):
                entry["aliases"] = [str(a) for a in s["aliases"]]
            cfg_sources.append(entry)
        providers = [{"provider": "libre", "url": server.translate_url}] if table else []
        config_text = json.dumps({
            "storage": {"url": "sqlite:///store.sqlite3"},
            "output": {"dir": "output", "max_entries": 10_000},
            "translation": {"target": "en", "timeout": "5s", "providers": providers},
            # The set's feeds are served on loopback, which sources may not reach by default.
            "fetch": {"allow_private_networks": True},
            "sources": cfg_sources,
        }, ensure_ascii=False)
        cfg_path = Path(tmp) / "aggregator.yaml"
        cfg_path.write_text(config_text, encoding="utf-8")  # JSON is YAML
        config = load_config(cfg_path)
        with Aggregator(config).store() as store:
            run_cycle(store, config, fetch_all=True)
            result = _score(store, config, gold)
    result.seconds = time.monotonic() - t0
    return result


def _score(store: Store, config: Any, gold: list[dict[str, Any]]) -> EvalResult:
    res = EvalResult()
    matches = store.all_matches()
    by_post: dict[int, list[Any]] = defaultdict(list)
    for m in matches:
        by_post[m.post_id].append(m)
    res.articles = store.count_entries().get("outlet", 0)
    for g in gold:
        case = g.get("case", "?")
        posts = [e for e in store.find_entries_by_link(g["link"]) if e.role == "blog"]
        res.posts += 1
        res.posts_per_case[case] += 1
        want = set(g.get("cited") or [])
        got: dict[str, str] = {}
        if posts:
            post = posts[0]
            arts = store.entries_by_ids([m.article_id for m in by_post.get(post.id, [])])
            for m in by_post.get(post.id, []):
                a = arts.get(m.article_id)
                if a and a.link:
                    got[a.link] = m.evidence
        counts = res.cases[case]
        for link in got:
            if link in want:
                counts.tp += 1
                res.overall.tp += 1
            else:
                counts.fp += 1
                res.overall.fp += 1
                res.errors.append(Error("FP", case, g["link"], link, got[link]))
        missing = want - set(got)
        if missing:
            why = "post not in the store"
            if posts:
                _, outcome = rematch(store, config, posts[0])
                why = "; ".join(outcome.notes) or "no citation found in the post"
            for link in sorted(missing):
                counts.fn += 1
                res.overall.fn += 1
                res.errors.append(Error("FN", case, g["link"], link, why))
    return res


def render_report(r: EvalResult) -> str:
    lines = [f"{r.posts} posts, {r.articles} outlet articles, {r.seconds:.1f}s", "",
             f"{'case':<18} {'posts':>5} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7} {'f1':>6}"]
    for case, c in sorted(r.cases.items()):
        lines.append(f"{case:<18} {r.posts_per_case[case]:>5} {c.tp:>4} {c.fp:>4} {c.fn:>4} "
                     f"{c.precision:>9.3f} {c.recall:>7.3f} {c.f1:>6.3f}")
    o = r.overall
    lines.append(f"{'overall':<18} {r.posts:>5} {o.tp:>4} {o.fp:>4} {o.fn:>4} "
                 f"{o.precision:>9.3f} {o.recall:>7.3f} {o.f1:>6.3f}")
    if r.errors:
        lines.append("")
        for e in r.errors:
            lines.append(f"{e.kind} [{e.case}] {e.post}")
            lines.append(f"     article:  {e.article}")
            lines.append(f"     evidence: {e.evidence}")
    else:
        lines.append("")
        lines.append("no false positives, no false negatives")
    return "\n".join(lines)
