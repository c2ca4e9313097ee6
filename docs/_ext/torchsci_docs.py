"""Sphinx extension of the torchsci site: the CLI reference generated from the commands themselves, the list
of re-exported names, and cross-references resolved the way Python resolves names.

``.. torchsci-cli::`` walks the ``torchsci`` argument parser (so a command a plug-in adds appears
without editing the docs), runs ``torchsci <command> --help`` for each command through the same entry
point the console script calls (:func:`torchsci.cli.main`), and inserts every help text verbatim, one
section per command. The config-driven commands (``train``, ``evaluate``, ``predict``) print Hydra's
help, which lists the config groups and experiments found at build time.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import os
import re
import sys
from typing import Any

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


def command_paths() -> list[list[str]]:
    """Every command of ``torchsci``: ``[]``, ``["train"]``, ..., ``["neuro", "segment"]``, in parser order."""
    from torchsci.cli import build_parser

    paths: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        paths.append(prefix)
        for action in parser._actions:  # argparse keeps sub-parsers only here
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, [*prefix, name])

    walk(build_parser(), [])
    # `torchsci export` is config-driven (Hydra's help) unless a checkpoint comes first (its own options).
    where = paths.index(["export"]) + 1
    paths.insert(where, ["export", "CHECKPOINT"])
    return paths


def help_text(path: list[str]) -> str:
    """What ``torchsci <path> --help`` prints (stdout), run in this process through the console entry point."""
    from torchsci.cli import main

    out = io.StringIO()
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal width; fix it so the page is stable
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main([*path, "--help"])
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    text = out.getvalue().strip()
    if not text:
        raise RuntimeError(f"`torchsci {' '.join(path)} --help` printed nothing")
    return text


class TorchsciCli(SphinxDirective):
    """One section per ``torchsci`` command with its ``--help`` output."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        sections = []
        for path in command_paths():
            title = " ".join(["torchsci", *path])
            section = nodes.section(ids=[nodes.make_id("cli " + title)], names=[nodes.fully_normalize_name(title)])
            section += nodes.title(text=title)
            block = nodes.literal_block(text=f"$ {title} --help\n{help_text(path)}")
            block["language"] = "text"
            section += block
            sections.append(section)
        return sections


class TorchsciExports(SphinxDirective):
    """A list of the names a package re-exports (its ``__all__``), each linked to where it is documented."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        package = importlib.import_module(self.arguments[0])
        lines = []
        for name in sorted(package.__all__, key=str.lower):
            obj = getattr(package, name)
            if inspect.ismodule(obj):
                lines.append(f"* ``{self.arguments[0]}.{name}``: :py:mod:`{obj.__name__}`")
                continue
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                kind = type(obj)
                lines.append(f"* ``{self.arguments[0]}.{name}``: an instance of :py:class:`{kind.__module__}.{kind.__qualname__}`")
                continue
            role = "class" if inspect.isclass(obj) else "func"
            lines.append(f"* ``{self.arguments[0]}.{name}``: :py:{role}:`{obj.__module__}.{obj.__qualname__}`")
        return self.parse_text_to_nodes("\n".join(lines))


# --- cross-references: resolve names the way Python would -----------------------------------------------------
OUR_PACKAGES = ("torchsci", "torchsci_neuro", "torchsci_physics", "torchsci_chem")


def _locate(dotted: str) -> Any:
    """The object ``dotted`` names (``torchsci.DataError``, ``torchsci.Trainer.fit``), or ``None``."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        except Exception:  # noqa: BLE001 (a module that fails to import is not ours to resolve)
            return None
        for name in parts[i:]:
            try:  # static: a property is not run; a module's __getattr__ (lazy names) is
                obj = inspect.getattr_static(obj, name)
            except AttributeError:
                try:
                    obj = getattr(obj, name)
                except Exception:  # noqa: BLE001
                    return None
        return obj
    return None


def canonical_name(target: str, module: str | None) -> str | None:
    """Where ``target`` is documented: its defining module plus qualified name.

    ``target`` may be a public alias (``torchsci.DataError`` is ``torchsci.errors.DataError``) or a name
    as written inside ``module`` (``DataError`` where the module imports it, ``Trainer.fit``).
    """
    for candidate in ([f"{module}.{target}"] if module else []) + [target, f"builtins.{target}"]:
        obj = _locate(candidate)
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if inspect.ismodule(obj):
            return obj.__name__
        if obj is None or not hasattr(obj, "__qualname__") or not hasattr(obj, "__module__"):
            continue
        return f"{obj.__module__}.{obj.__qualname__}"
    return None


UNCHECKED_CLASS = "xref-unchecked"  # rendered, on purpose, without a link (see unchecked_reference)


def unchecked_reference(app, node) -> bool:
    """Whether a Python reference cannot or need not resolve.

    A name defined outside the four packages (torch, numpy, ...) has no inventory in this offline build
    (``nitpick_ignore_regex`` in conf.py lists those packages); a private or special name
    (``Trainer._evaluate``, ``__getitems__``) is deliberately not in the API reference. Every other broken
    reference is a warning, which ``-W`` makes an error.
    """
    target = node["reftarget"].lstrip("~.")
    if any(part.startswith("_") for part in target.split(".")):
        return True
    name = canonical_name(target, node.get("py:module"))
    if name and not name.startswith(OUR_PACKAGES):
        return True
    kind = f"{node.get('refdomain')}:{node.get('reftype')}"
    return any(re.fullmatch(k, kind) and re.fullmatch(t, target) for k, t in app.config.nitpick_ignore_regex)


def resolve_alias(app, env, node, contnode):
    """``missing-reference``: retry a Python reference at the name's canonical location, then as a name
    that is unique in the API (``RootSpec`` written in a module that does not import it); an unchecked
    reference comes back as its text, marked, so the browser check can tell it from a broken one."""
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    name = canonical_name(node["reftarget"], node.get("py:module"))
    if name and name != node["reftarget"] and name.startswith(OUR_PACKAGES):
        for role in (node["reftype"], "obj"):
            found = domain.resolve_xref(env, node["refdoc"], app.builder, role, name, node, contnode)
            if found is not None:
                return found
    if not node.get("refspecific"):
        node["refspecific"] = True  # the Python domain's own search by unique suffix
        try:
            found = domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], node["reftarget"], node,
                                        contnode)
        finally:
            node["refspecific"] = False
        if found is not None:
            return found
    if unchecked_reference(app, node):
        contnode["classes"].append(UNCHECKED_CLASS)
        return contnode
    return None


def _prefer_submodules(import_by_name: Any) -> Any:
    """autosummary resolves ``torchsci.registry`` as the attribute ``registry`` of ``torchsci`` (the registry
    instance, which shadows the submodule of that name); document the submodule."""

    def wrapped(name: str, grouped_exception: bool = True) -> tuple[Any, Any, str]:
        found = import_by_name(name, grouped_exception)
        module = sys.modules.get(name)
        if not inspect.ismodule(found[0]) and inspect.ismodule(module):
            return module, None, name
        return found

    return wrapped


def public_bases(app, name, obj, options, bases):
    """``autodoc-process-bases``: show a private base class (``_Tagger``) as its public bases."""
    i = 0
    while i < len(bases):
        base = bases[i]
        if isinstance(base, type) and base.__name__.startswith("_"):
            bases[i:i + 1] = list(base.__bases__)
        else:
            i += 1


def setup(app):
    from sphinx.ext import autosummary

    autosummary._import_by_name = _prefer_submodules(autosummary._import_by_name)
    app.add_directive("torchsci-cli", TorchsciCli)
    app.add_directive("torchsci-exports", TorchsciExports)
    app.connect("missing-reference", resolve_alias)
    app.connect("autodoc-process-bases", public_bases)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
