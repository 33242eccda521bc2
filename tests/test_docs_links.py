"""The docs name things that exist: local links and their anchors resolve, the docs index lists every
page and decision record, every repository path and ``pinrec.<package>...`` name in backticks exists,
and the README's CLI table and code map match the parser, the job functions and the DAGs' tasks.

Read-only and cheap (no Spark, no heavy import): names resolve through the source files' AST."""
from __future__ import annotations

import argparse
import ast
import re
import shlex
from functools import cache
from pathlib import Path

import pytest

from pinrec.jobs.orchestration.cli_parser import build_parser
from tests.support.repo import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), REPO / "dags/README.md",
        REPO / "notebooks/README.md"]
TOP = ("jobs/", "models/", "export/", "schemas/", "dags/", "tests/", "benchmarks/", "config/", "docs/",
       "notebooks/", ".ci/")
PACKAGES = ("jobs", "models", "export", "schemas", "dags")
PLACEHOLDER = re.compile(r"[<>*{}]|YYYY|\.\.\.")
FENCE = re.compile(r"^\s*(```|~~~)")


def doc_id(doc: Path) -> str:
    return str(doc.relative_to(REPO))


def prose_lines(doc: Path):
    """(line number, line) outside fenced code blocks."""
    fenced = False
    for i, line in enumerate(doc.read_text().splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield i, line


def code_spans(doc: Path):
    """(line number, text) of every inline code span outside fenced blocks."""
    for i, line in prose_lines(doc):
        for m in re.finditer(r"(`+)(.+?)\1", line):
            yield i, m.group(2)


@cache
def anchors(doc: Path) -> frozenset[str]:
    """GitHub's heading anchors of a Markdown file (lower case, punctuation dropped, spaces to '-',
    '-1', '-2' for repeats), plus explicit ``<a name|id="...">``."""
    out, seen = set(), {}
    for _, line in prose_lines(doc):
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
        out.update(re.findall(r'<a (?:name|id)="([^"]+)"', line))
    return frozenset(out)


def test_slug_rules():
    doc = REPO / "docs" / "demo.md"
    assert "the-step-cache-reruns-that-recompute-only-what-changed" in anchors(doc)


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_local_links_and_anchors_resolve(doc):
    broken = []
    for i, line in prose_lines(doc):
        for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            if not dest.exists():
                broken.append(f"{i}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{i}: {target} (no such heading)")
    assert not broken, f"{doc_id(doc)}: " + "; ".join(broken)


def _linked(index: Path) -> set[Path]:
    text = index.read_text()
    return {(index.parent / t.partition("#")[0]).resolve() for t in re.findall(r"\]\(([^)\s#]+)", text)}


def test_docs_index_lists_every_page_and_decision():
    pages = {p.resolve() for p in (REPO / "docs").glob("*.md")} - {(REPO / "docs/README.md").resolve()}
    decisions = {p.resolve() for p in (REPO / "docs/decisions").glob("[0-9]*.md")}
    index = _linked(REPO / "docs/README.md")
    assert not pages - index, f"docs/README.md does not link {sorted(p.name for p in pages - index)}"
    assert not decisions - index, f"docs/README.md does not link {sorted(p.name for p in decisions - index)}"
    listed = _linked(REPO / "docs/decisions/README.md")
    assert not decisions - listed, f"docs/decisions/README.md does not list {sorted(p.name for p in decisions - listed)}"


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_repository_paths_in_backticks_exist(doc):
    """`jobs/x/y.py`, `tests/...py::test_name`, `config/...`: what users open or run exists."""
    missing = []
    for i, span in code_spans(doc):
        if "://" in span:
            continue
        for word in re.findall(r"[\w./{}*<>-]+(?:::\w+)*", span):
            word = word.rstrip(".,;:")
            path, *names = word.split("::")
            if not path.startswith(TOP) or PLACEHOLDER.search(path):
                continue
            if not (REPO / path).exists():
                missing.append(f"{i}: {path}")
            elif names and path.endswith(".py"):
                defined = set(re.findall(r"^\s*(?:async\s+)?(?:def|class)\s+(\w+)", (REPO / path).read_text(), re.MULTILINE))
                missing += [f"{i}: {path}::{n}" for n in names if n not in defined]
    assert not missing, f"{doc_id(doc)} names what does not exist: " + "; ".join(missing)


@cache
def module_file(dotted: str) -> Path | None:
    """``pinrec.jobs.x.y`` -> its source file in this checkout (None: no such module)."""
    parts = dotted.split(".")[1:]
    base = REPO.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@cache
def module_names(path: Path) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """A module's top-level names (defs, classes, assignments, imports, ``__all__``) and, per class
    defined in it, the names of its body (methods, fields)."""
    tree = ast.parse(path.read_text())
    names, classes = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            body = set()
            for b in node.body:
                if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    body.add(b.name)
                elif isinstance(b, ast.AnnAssign) and isinstance(b.target, ast.Name):
                    body.add(b.target.id)
                elif isinstance(b, ast.Assign):
                    body |= {t.id for t in b.targets if isinstance(t, ast.Name)}
            classes[node.name] = frozenset(body) if not node.bases else None  # a base may supply more
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
                names |= {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return frozenset(names), classes


def resolves(dotted: str) -> bool:
    """``pinrec.<package>.<module>[.<name>[.<member>]]`` names a module, a top-level name of it, or a
    member of a class defined there."""
    parts = dotted.split(".")
    for n in range(len(parts), 1, -1):
        path = module_file(".".join(parts[:n]))
        if path is None:
            continue
        rest = parts[n:]
        if not rest:
            return True
        names, classes = module_names(path)
        if rest[0] not in names:
            return False
        members = classes.get(rest[0])
        return len(rest) == 1 or members is None or (len(rest) == 2 and rest[1] in members)
    return False


def test_resolves_rejects_what_is_not_there():
    assert resolves("pinrec.jobs.orchestration.demo.run_demo")
    assert resolves("pinrec.jobs.orchestration.cli_parser.build_parser")
    assert not resolves("pinrec.jobs.orchestration.demo.no_such_function")
    assert not resolves("pinrec.jobs.no_such_module")


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_pinrec_names_in_backticks_resolve(doc):
    """`pinrec.jobs.x.y.func`: the module and the function a reader would import exist."""
    missing = []
    for i, span in code_spans(doc):
        for name in re.findall(rf"(?<![\w./])pinrec\.(?:{'|'.join(PACKAGES)})(?:\.\w+)+", span):
            if not resolves(name):
                missing.append(f"{i}: {name}")
    assert not missing, f"{doc_id(doc)} names what does not exist: " + "; ".join(missing)


def _leaves(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix.strip()}
    return {leaf for name, p in subs[0].choices.items() for leaf in _leaves(p, f"{prefix} {name}")}


def _readme_section(title: str) -> list[list[str]]:
    """The table rows (cells) of a README section."""
    text = (REPO / "README.md").read_text().split(f"\n## {title}\n")[1].split("\n## ")[0]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| ---")]


def test_readme_cli_table_matches_the_parser():
    leaves = _leaves(build_parser())
    groups = {leaf.split()[0] for leaf in leaves if " " in leaf}
    documented, unresolved = set(), []
    for command, function, _ in _readme_section("The CLI")[1:]:
        # `pinrec publish rollback --to V` / `publish prune ...`, `pinrec stack up\|status\|down`
        for head, actions in re.findall(r"`(?:pinrec )?([a-z][\w-]*)((?: [a-z][\w-]*(?:\\\|[a-z][\w-]*)*)?)", command):
            if head in groups:
                documented |= {f"{head} {a}" for a in actions.split()[0].split("\\|")} if actions else {head}
            else:
                documented.add(head)
        for name in re.findall(r"`(pinrec\.[\w.]+)`", function):
            if not resolves(name):
                unresolved.append(name)
        # (`ingest_day`, `features_day` of `daily_tasks`; `graph_day` of `training_tasks`), (`up`, `down`)
        m = re.search(r"`(pinrec\.[\w.]+)` \(([^)]*)\)", function)
        if m and "through" not in m.group(2):
            for group in m.group(2).split(";"):
                *names, of = re.findall(r"`(\w+)`", group) if " of " in group else (*re.findall(r"`(\w+)`", group), None)
                module = f"{m.group(1).rsplit('.', 1)[0]}.{of}" if of else m.group(1)
                unresolved += [f"{module}.{n}" for n in names if not resolves(f"{module}.{n}")]
    assert not unresolved, f"README's CLI table names functions that do not exist: {unresolved}"
    assert documented == leaves, (f"missing from README's CLI table: {sorted(leaves - documented)}; "
                                  f"not pinrec commands: {sorted(documented - leaves)}")


def _dag_tasks() -> set[str]:
    out = set()
    for dag in (REPO / "dags").glob("*.py"):
        for node in ast.walk(ast.parse(dag.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                    "task" in ast.unparse(d) for d in node.decorator_list):
                out.add(f"{dag.stem}.{node.name}")
    return out


def test_readme_code_map_dag_tasks_and_commands_exist():
    tasks, leaves = _dag_tasks(), {leaf.split()[0] for leaf in _leaves(build_parser())}
    dag, bad = None, []
    for stage, _folder, cli, task, *_ in _readme_section("Code map")[1:]:
        for name in re.findall(r"`([\w.]+)`", task):
            # `pinrec_daily.features`, `.training_set` (same DAG), `publish` (a task of the DAG named last)
            dag = name.split(".")[0] if "." in name.strip(".") else dag
            full = name if "." in name.strip(".") else f"{dag}.{name.strip('.')}"
            if full not in tasks:
                bad.append(f"{stage}: DAG task {full}")
        bad += [f"{stage}: command {c}" for c in re.findall(r"`([a-z][\w-]*)`", cli) if c not in leaves]
    assert not bad, f"README's code map names what does not exist: {bad}"


COMMAND = re.compile(r"(?:^|[\s/(`])(?:pinrec|-m pinrec\.jobs\.orchestration\.cli)\s+(?=[a-z])")
SHELL_END = re.compile(r"\s(?:&&|\|\||;|>|2>|<)\s|\s\|\s|\)\s*$")
VALUE_PLACEHOLDER = re.compile(r"^[A-Z][A-Z_0-9]*$|[<>]|\.\.\.|^\$")


def _code(doc: Path):
    """(line number, text, inline) of every fenced-block line (``\\`` continuations joined) and inline span."""
    fenced, buffer, start = False, "", 0
    for i, line in enumerate(doc.read_text().splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif fenced:
            buffer, start = buffer + line.rstrip().removesuffix("\\") + " ", start or i
            if not line.rstrip().endswith("\\"):
                yield start, buffer, False
                buffer, start = "", 0
        else:
            yield from ((i, m.group(2), True) for m in re.finditer(r"(`+)(.+?)\1", line))


def _tokens(text: str, inline: bool) -> list[str]:
    """Shell words up to the end of the command; `[--x]` brackets dropped; a table's `a\\|b` is `a|b`."""
    text = text.replace("\\|", "\0")
    text = re.split(r"\s(?:&&|;|>)\s", f" {text} ")[0] if inline else SHELL_END.split(f" {text} ")[0]
    try:
        words = shlex.split(text.replace("\0", "|"), comments=not inline)
    except ValueError:
        words = text.replace("\0", "|").split()
    out = []
    for w in words:
        while w.startswith("[") and "=[" not in w:
            w = w[1:]
        while w.endswith("]") and w.count("]") > w.count("["):
            w = w[:-1]
        out += [w] if w else []
    return out


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next((dict(a.choices) for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def command_problems(words: list[str], parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """What is wrong with ``pinrec <words>`` (unknown options, values outside an option's choices)
    and its ``--set`` overrides. Words that are not a subcommand (prose: "pinrec is ...") and a
    command group named without its action (`pinrec publish`) are not commands: nothing to check."""
    for i in range(2):  # command, then a group's action
        subs = _subparsers(parser)
        if not subs:
            break
        if not words or words[0] not in subs and words[0].split("|")[0] not in subs:
            return [], []
        parser, words = subs[words[0].split("|")[0]], words[1:]
    options = {s: a for a in parser._actions for s in a.option_strings}
    problems, overrides = [], []
    for j, word in enumerate(words):
        if not word.startswith("--"):
            continue
        flag, has_value, value = word.partition("=")
        unknown = [f for f in flag.split("/") if f not in options]  # prose's `--start/--end`
        if unknown:
            problems += [f"unknown option {f}" for f in unknown]
            continue
        flag = flag.split("/")[0]
        action = options[flag]
        if not has_value and action.nargs != 0 and j + 1 < len(words):
            value = words[j + 1]
        if action.choices and value and not VALUE_PLACEHOLDER.search(value):
            problems += [f"{flag} {v}: not one of {list(action.choices)}" for v in value.split("|")
                         if v not in action.choices]
        if flag == "--set" and value and not VALUE_PLACEHOLDER.search(value.partition("=")[0]):
            overrides.append(value)
        if flag == "--config" and value.startswith("config/") and not (REPO / value).is_file():
            problems.append(f"--config {value}: no such file")
    return problems, overrides


def test_command_problems_finds_what_users_would_hit():
    parser = build_parser()
    assert command_problems(["ingest", "--day", "2026-01-01"], parser)[0] == ["unknown option --day"]
    assert command_problems(["publish", "rollback", "--to", "V"], parser) == ([], [])
    assert command_problems(["demo", "--force", "trainingset"], parser)[0]
    assert command_problems(["demo", "--set", "cache.enabled=false"], parser) == ([], ["cache.enabled=false"])
    assert command_problems(["is", "a", "tool"], parser) == ([], [])
    assert command_problems(["ingest", "--start/--end"], parser) == ([], [])
    assert _tokens("pinrec stack up\\|down [--state-dir D] && ls", inline=True) == [
        "pinrec", "stack", "up|down", "--state-dir", "D"]


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_documented_commands_parse(doc):
    """Every `pinrec <cmd> ...` in code (inline or fenced): the subcommand and each option exist, a
    value with choices is one of them, and the command's `--set` overrides pass the typed config."""
    from pinrec.jobs.config_load import load_config, parse_overrides

    parser, wrong = build_parser(), []
    for i, text, inline in _code(doc):
        for m in COMMAND.finditer(text):
            problems, overrides = command_problems(_tokens(text[m.end():], inline), parser)
            wrong += [f"{i}: {p}" for p in problems]
            if overrides:
                try:
                    load_config(overrides=parse_overrides(overrides))
                except Exception as e:  # noqa: BLE001  (ConfigError, or what parsing raises)
                    wrong.append(f"{i}: --set {' --set '.join(overrides)}: {str(e).splitlines()[0]}")
    assert not wrong, f"{doc_id(doc)}: " + "; ".join(wrong)
