"""File reads and writes with errors that name the file; writes are atomic.

Every output the package finalises in one go (calibration files, images, depth PNGs,
checkpoints) is written to a temporary file in the target folder, flushed to disk and
moved into place with ``os.replace``. An ``OSError`` becomes the caller's
:class:`DrivingsegError` subclass naming the file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import yaml

from drivingseg.errors import DrivingsegError
from drivingseg.signals import signals_held

__all__ = [
    "find_duplicate_key",
    "mkdir_problem",
    "parse_yaml",
    "prepare_output",
    "read_text",
    "read_yaml_mapping",
    "write_atomic",
    "write_bytes_atomic",
    "write_text_atomic",
    "write_texts_together",
    "yaml_problem",
]


def prepare_output(
    path: str | PathLike[str], *, error: type[DrivingsegError], what: str
) -> Path:
    """Check, before any long work, that ``path`` can be written: it is not a folder and its
    nearest existing folder is a writable folder. Nothing is created (the atomic write
    makes the folders), so a command stopped or failing before it writes leaves no empty
    folder behind. Returns it as a :class:`Path`."""
    target = Path(path)
    if target.is_dir():
        raise error(f"cannot write {what}: it is a folder", path=target)
    parent = target.absolute().parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        message = f"cannot write {what}: {str(parent)!r} is not a folder"
        raise error(message, path=target)
    if not os.access(parent, os.W_OK | os.X_OK):
        message = f"cannot write {what}: folder {str(parent)!r} is not writable"
        raise error(message, path=target)
    return target


def mkdir_problem(folder: str | PathLike[str], exc: OSError) -> str:
    """Why ``folder`` could not be created: a file in the way is named ("'x' is a file, not
    a folder"; ``mkdir`` says only 'File exists' or 'Not a directory'), else the OS reason."""
    target = Path(folder).absolute()
    for path in (target, *target.parents):
        if path.exists() and not path.is_dir():
            return f"{str(path)!r} is a file, not a folder"
    return exc.strerror or str(exc)


def write_atomic(
    path: str | PathLike[str],
    write: Callable[[Path], object],
    *,
    error: type[DrivingsegError],
    what: str,
) -> None:
    """Call ``write(tmp_path)`` and move the result to ``path``; folders are created.

    ``what`` names the file kind in the error (``"cannot write {what}: ..."``).
    """
    target = Path(path)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(target)
        write(tmp)
        _sync(tmp)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise error(f"cannot write {what}: {exc.strerror or exc}", path=target) from exc
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


_UNENCODABLE = "backslashreplace"
"""How a text file shows a character UTF-8 cannot encode: a file name with a byte that is
not UTF-8 (``cv\xff/val``, decoded by Python as the surrogate ``\udcff``), quoted in a
report, is written as ``\udcff`` instead of failing the write after all the work."""


def write_texts_together(
    texts: Mapping[Path, str],
    *,
    error: type[DrivingsegError],
    what: str,
    remove: Sequence[Path] = (),
) -> None:
    """Replace several files as one set: every text goes to a temporary file beside its
    target and the files in ``remove`` are deleted first; only then are the temporaries
    renamed into place, so an error (a full disk, a folder in the way, a file that cannot
    be removed) leaves the old set as it was; Ctrl-C or SIGTERM during the renames is held
    until they are all done. The targets' folders must exist."""
    temps: list[tuple[Path, Path]] = []
    try:
        for target, text in texts.items():
            if target.is_dir():
                raise error(f"cannot write {what}: it is a folder", path=target)
            try:
                tmp = _temp_beside(target)
                temps.append((tmp, target))
                tmp.write_text(text, encoding="utf-8", errors=_UNENCODABLE, newline="\n")
                _sync(tmp)
            except OSError as exc:
                raise error(f"cannot write {what}: {exc.strerror or exc}", path=target) from exc
        with signals_held(what):  # Ctrl-C between two renames would leave a mixed set
            for stale in remove:
                try:
                    if stale.exists() or stale.is_symlink():
                        os.remove(stale)
                except OSError as exc:
                    message = f"cannot remove stale {what}: {exc.strerror or exc}"
                    raise error(message, path=stale) from exc
            for tmp, target in temps:
                try:
                    os.replace(tmp, target)
                except OSError as exc:
                    message = f"cannot write {what}: {exc.strerror or exc}"
                    raise error(message, path=target) from exc
    finally:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


def _temp_beside(target: Path) -> Path:
    """A new empty hidden file in ``target``'s folder (so renaming it over ``target`` is
    atomic)."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(name)


def _sync(tmp: Path) -> None:
    """Flush ``tmp`` to disk and give it ordinary permissions before it is renamed."""
    with tmp.open("rb+") as handle:
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)


def write_bytes_atomic(
    path: str | PathLike[str], data: bytes, *, error: type[DrivingsegError], what: str
) -> None:
    """Write ``data`` to ``path`` atomically."""
    write_atomic(path, lambda p: p.write_bytes(data), error=error, what=what)


def write_text_atomic(
    path: str | PathLike[str], text: str, *, error: type[DrivingsegError], what: str
) -> None:
    """Write UTF-8 ``text`` (with ``\\n`` line ends; see :data:`_UNENCODABLE`) to ``path``
    atomically."""
    write_atomic(
        path,
        lambda p: p.write_text(text, encoding="utf-8", errors=_UNENCODABLE, newline="\n"),
        error=error,
        what=what,
    )


def read_text(
    path: str | PathLike[str],
    *,
    error: type[DrivingsegError],
    what: str,
    encoding: str = "utf-8",
) -> str:
    """Read a text file; a missing or unreadable file raises ``error`` naming it.

    Messages: ``"{what} not found (does not exist)"`` / ``"(is a directory)"``, or
    ``"cannot read {what}: ..."``.
    """
    file = Path(path)
    if not file.is_file():
        state = "is a directory" if file.is_dir() else "does not exist"
        raise error(f"{what} not found ({state})", path=file)
    try:
        return file.read_text(encoding=encoding)
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what}: {exc}", path=file) from exc


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _duplicate_in(
    node: yaml.Node, where: str, loader: yaml.SafeLoader, seen: set[int]
) -> tuple[str, int, int] | None:
    """The first key given twice in a mapping under ``node`` (depth first, document order):
    its dotted path and the 1-based lines of both occurrences; ``None`` if there is none."""
    if id(node) in seen:
        return None
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _duplicate_in(item, f"{where}[{index}]", loader, seen)
            if found is not None:
                return found
    elif isinstance(node, yaml.MappingNode):
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                found = _duplicate_in(value_node, where, loader, seen)
            else:
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "<key>"
                dotted = f"{where}.{name}" if where else str(name)
                line = key_node.start_mark.line + 1
                key = loader.construct_object(key_node, deep=True)
                try:
                    if key in first_line:
                        return dotted, first_line[key], line
                    first_line[key] = line
                except TypeError:
                    pass  # an unhashable key: the constructor refuses it when loading
                found = _duplicate_in(value_node, dotted, loader, seen)
            if found is not None:
                return found
    return None


def find_duplicate_key(text: str) -> tuple[str, int, int] | None:
    """The first mapping key of YAML ``text`` given twice, as ``(dotted path, first line,
    second line)``, or ``None``. Keys compare as ``yaml.safe_load`` builds them (``1`` and
    ``01`` are the same key); keys merged in with ``<<`` may be overridden. Raises
    ``yaml.YAMLError`` when ``text`` is not a single YAML document."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return None if root is None else _duplicate_in(root, "", loader, set())
    finally:
        loader.dispose()


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: ``line L, column C: problem`` where PyYAML knows the
    place (its own message spans lines, quoting the source under a caret and naming
    ``<unicode string>`` rather than the file)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or exc.context or "invalid YAML"
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def parse_yaml(
    text: str,
    path: str | PathLike[str],
    *,
    error: type[DrivingsegError],
    what: str,
    load: Callable[[str], Any] = yaml.safe_load,
) -> Any:
    """``load(text)``, refusing a mapping key given twice (``yaml.safe_load`` would keep
    the last value silently) and invalid YAML with ``error`` naming ``path``."""
    try:
        duplicate = find_duplicate_key(text)
        data = load(text)
    except yaml.YAMLError as exc:
        raise error(f"{what} is not valid YAML: {yaml_problem(exc)}", path=path) from exc
    if duplicate is not None:
        key, first, second = duplicate
        message = f"field {key!r} given twice (lines {first} and {second})"
        raise error(message, path=path)
    return data


def read_yaml_mapping(
    path: str | PathLike[str], *, error: type[DrivingsegError], what: str,
    load: Callable[[str], Any] = yaml.safe_load,
) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping (an empty file gives ``{}``);
    ``load`` parses the text (a safe loader of the caller's own, e.g. the launch files').
    A key given twice is refused (see :func:`parse_yaml`)."""
    text = read_text(path, error=error, what=what)
    data = parse_yaml(text, path, error=error, what=what, load=load)
    if data is None:
        return {}
    if not isinstance(data, dict):
        message = f"{what} must be a YAML mapping, got {type(data).__name__} {data!r}"
        raise error(message, path=path)
    return data
