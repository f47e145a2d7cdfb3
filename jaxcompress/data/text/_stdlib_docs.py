"""Extracts the English documentation that ships with the Python interpreter.

Run as a script by :mod:`jaxcompress.data.text.corpus` in an isolated child
interpreter (``python -I -S``): no site-packages, no user site, no current
directory on ``sys.path`` and no ``PYTHON*`` environment variables, so the
output depends only on the Python build. It imports standard-library modules
one by one (skipping those with side effects), reads the ``pydoc_data``
topics and the docstrings of modules, public classes (with their methods) and
public functions, and prints one JSON document list on stdout.

This file imports nothing outside the standard library on purpose.

References:
  Lan et al., "ALBERT: A Lite BERT for Self-supervised Learning of Language
  Representations", ICLR 2020 (documents as the unit of sentence-order pairs).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import pkgutil
import sys
import warnings

#: Top-level names never imported: they open windows or browsers, print on
#: import, write caches next to the standard library, are test suites, or
#: hold hundreds of generated codec tables with boilerplate docstrings.
SKIP_TOP_LEVEL = frozenset({
    "antigravity", "this", "__hello__", "__phello__", "idlelib", "tkinter", "turtle", "turtledemo",
    "test", "lib2to3", "ensurepip", "pydoc_data", "readline", "xxlimited", "xxlimited_35", "xxsubtype",
    "encodings", "msilib", "winreg", "winsound", "msvcrt", "nt", "_winapi",
})
#: Submodule name parts that mark test suites and demos.
SKIP_PARTS = frozenset({"test", "tests", "idle_test", "demo", "__main__"})
#: Docstrings shorter than this (after cleaning) are signatures or stubs, not prose.
MIN_CHARS = 60


def _public(name: str) -> bool:
    return not name.startswith("_")


def _module_names() -> list[str]:
    """Importable public standard-library modules and their public submodules, sorted."""
    names = set()
    for top in sorted(sys.stdlib_module_names):
        if not _public(top) or top in SKIP_TOP_LEVEL:
            continue
        module = _import(top)
        if module is None:
            continue
        names.add(top)
        path = getattr(module, "__path__", None)
        if path is None:
            continue
        # walk_packages would import subpackages itself; iter_modules per level keeps control here.
        stack = [(top, list(path))]
        while stack:
            prefix, paths = stack.pop()
            for info in pkgutil.iter_modules(paths):
                parts = info.name.split(".")
                if not _public(info.name) or SKIP_PARTS.intersection(parts):
                    continue
                full = f"{prefix}.{info.name}"
                sub = _import(full)
                if sub is None:
                    continue
                names.add(full)
                if info.ispkg and getattr(sub, "__path__", None):
                    stack.append((full, list(sub.__path__)))
    return sorted(names)


def _import(name: str):
    """Imports ``name`` quietly; None when it is missing on this platform or fails."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except BaseException:  # ImportError, SystemExit from platform checks, anything else.
        return None


def _own_doc(obj) -> str:
    """The docstring ``obj`` defines itself (not one inherited from a base class), cleaned."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
    else:
        doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _method_docs(cls) -> list[str]:
    """Docstrings of the public methods and properties a class defines, by name."""
    docs = []
    for name in sorted(cls.__dict__):
        if not _public(name):
            continue
        member = cls.__dict__[name]
        if isinstance(member, (classmethod, staticmethod)):
            member = member.__func__
        elif isinstance(member, property):
            member = member.fget
        if not (inspect.isroutine(member) or inspect.ismethoddescriptor(member)):
            continue
        doc = _own_doc(member)
        if len(doc) >= MIN_CHARS:
            docs.append(doc)
    return docs


def _module_documents(name: str) -> list[dict]:
    module = sys.modules.get(name) or _import(name)
    if module is None:
        return []
    documents = []
    doc = _own_doc(module)
    if len(doc) >= MIN_CHARS:
        documents.append({"id": f"module:{name}", "kind": "module", "module": name, "text": doc})
    for attr in sorted(dir(module)):
        if not _public(attr):
            continue
        try:
            obj = getattr(module, attr)
        except BaseException:
            continue
        # Only what the module defines itself; re-exports are documented at home.
        if getattr(obj, "__module__", None) != name:
            continue
        if inspect.isclass(obj):
            parts = [_own_doc(obj)] + _method_docs(obj)
            text = "\n\n".join(p for p in parts if p)
            if len(text) >= MIN_CHARS:
                documents.append({"id": f"class:{name}.{attr}", "kind": "class", "module": name, "text": text})
        elif inspect.isroutine(obj):
            text = _own_doc(obj)
            if len(text) >= MIN_CHARS:
                documents.append({"id": f"function:{name}.{attr}", "kind": "function", "module": name,
                                  "text": text})
    return documents


def _topic_documents() -> list[dict]:
    from pydoc_data.topics import topics

    return [{"id": f"topic:{key}", "kind": "topic", "module": "pydoc_data.topics", "text": topics[key]}
            for key in sorted(topics)]


def extract() -> dict:
    """Returns ``{"python_version", "modules", "documents": [{id, kind, module, text}]}`` sorted by id."""
    documents = _topic_documents()
    modules = _module_names()
    for name in modules:
        documents.extend(_module_documents(name))
    documents.sort(key=lambda d: d["id"])
    return {"python_version": "%d.%d.%d" % sys.version_info[:3], "modules": modules, "documents": documents}


if __name__ == "__main__":
    result = extract()
    # Some imports (curses, logging) touch the real stdout; write once, at the very end.
    sys.stdout.write(json.dumps(result, ensure_ascii=False, sort_keys=True))
    sys.stdout.flush()
