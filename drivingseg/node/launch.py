"""Launch files: YAML node graphs in the spirit of ROS 2 launch.

A launch file declares ``arguments`` (with defaults), ``include``s other launch files with
explicit arguments, and lists ``nodes`` (``type``, ``name``, ``parameters``,
``remappings``, ``enabled``). ``$(arg name)`` is replaced by the argument's value: a value
that is exactly one substitution keeps the argument's type, otherwise it is pasted as
text. Command-line values (``name:=value``) are read as YAML scalars (``0.5`` a number,
``true`` a boolean; a leading ``~`` is the home folder); there and in the files an
unquoted boolean, number or date keeps its text as a :class:`Scalar`, so a str parameter
gets what was written (``fp16:=off`` is ``'off'``, not ``False``) and a bool parameter
takes ``true``/``false`` (or YAML 1.1's ``yes``/``no``, ``on``/``off``). A top-level
``qos: {overflow: drop_oldest|block}`` sets the graph's overflow policy (the including
file's wins over its includes'). Errors name the file, the node and the parameter.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import yaml

from drivingseg.errors import ConfigError
from drivingseg.fileio import read_yaml_mapping
from drivingseg.node.graph import Graph
from drivingseg.node.params import Scalar, where
from drivingseg.node.runtime import OVERFLOW_POLICIES
from drivingseg.share import share_dir

__all__ = [
    "LAUNCH_DIR",
    "LaunchDescription",
    "NodeSpec",
    "build_graph",
    "describe_arguments",
    "find_launch_file",
    "load_launch",
    "parse_cli_arguments",
]

LAUNCH_DIR = share_dir("launch")
"""The ``launch/`` folder: the checkout's, or a wheel's installed copy
(:func:`drivingseg.share.share_dir`)."""

_SUBST = re.compile(r"\$\(arg ([A-Za-z_][A-Za-z0-9_]*)\)")
_TOP_KEYS = ("arguments", "include", "nodes", "qos", "description")
_NODE_KEYS = ("type", "name", "parameters", "remappings", "enabled")
_INCLUDE_KEYS = ("file", "arguments")


class _LaunchLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s reading, but an unquoted bool, number or date is a Scalar."""


def _keep_text(tag: str) -> None:
    """Make ``_LaunchLoader`` wrap what SafeLoader builds for ``tag`` in a Scalar."""
    construct = yaml.SafeLoader.yaml_constructors[tag]

    def constructor(loader: yaml.SafeLoader, node: yaml.Node) -> Scalar:
        return Scalar(str(node.value), construct(loader, node))

    _LaunchLoader.add_constructor(tag, constructor)


for _kind in ("bool", "int", "float", "timestamp"):
    _keep_text(f"tag:yaml.org,2002:{_kind}")


def _load_yaml(text: str) -> Any:
    """``text`` read by ``_LaunchLoader`` (raises yaml.YAMLError)."""
    loader = _LaunchLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


@dataclass(frozen=True)
class NodeSpec:
    """One node of a launch file, substitutions done; ``path`` is the file declaring it."""

    type: str
    name: str
    parameters: dict[str, Any]
    remappings: dict[str, str]
    path: Path


@dataclass(frozen=True)
class LaunchDescription:
    """Every enabled node of a launch file and its includes."""

    path: Path
    nodes: tuple[NodeSpec, ...]
    overflow: str
    arguments: dict[str, Any]


def find_launch_file(name: str | PathLike[str]) -> Path:
    """``name`` as a path, else ``launch/<name>`` (``.yaml`` optional)."""
    p = Path(name)
    if p.is_file():
        return p
    for candidate in (LAUNCH_DIR / p, LAUNCH_DIR / f"{p}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(f.name for f in LAUNCH_DIR.glob("*.yaml")))
    raise ConfigError(f"launch file not found (in {LAUNCH_DIR}: {known})", path=p)


def parse_cli_arguments(items: Sequence[str]) -> dict[str, Any]:
    """``["name:=value", ...]`` to a dict; values parsed as YAML scalars (see _scalar).

    A value that starts with ``~`` has it expanded to the home folder, as the shell does
    for ``--out ~/runs`` but not after ``:=``: ``out_dir:=~/runs`` wrote into a folder
    named ``~`` in the working directory (one ``rm -rf ~`` away from the home folder)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition(":=")
        if not sep or not name.isidentifier():
            raise ConfigError(f"launch arguments are name:=value, got {item!r}")
        out[name] = _scalar(os.path.expanduser(text) if text.startswith("~") else text)
    return out


def _scalar(text: str) -> str:
    """A Scalar for an unquoted bool, number or date, a YAML string as read, else ``text``."""
    try:
        value = _load_yaml(text) if text else ""
    except yaml.YAMLError:
        return text
    return value if isinstance(value, str) else text


def _typed(value: Any) -> Any:
    """What YAML reads from ``value`` (a Scalar's value; anything else as it is)."""
    return value.value if isinstance(value, Scalar) else value


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml_mapping(path, error=ConfigError, what="launch file", load=_load_yaml)
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        message = f"unknown top-level keys {unknown!r}; valid: {', '.join(_TOP_KEYS)}"
        raise ConfigError(message, path=path)
    return data


def _entries(data: dict[str, Any], key: str, path: Path) -> list[Any]:
    """``data[key]`` as a list: ``include`` and ``nodes`` given as one mapping (no ``-``)
    used to be read key by key ("include #1 needs a 'file' key" of an entry that has one)."""
    raw = data.get(key) or []
    if not isinstance(raw, list):
        message = (f"'{key}' must be a list, one '- ' entry per {key.rstrip('s')}, "
                   f"got {type(raw).__name__} {raw!r}")
        raise ConfigError(message, path=path)
    return raw


def _declared_arguments(data: dict[str, Any], path: Path) -> dict[str, tuple[bool, Any]]:
    """name -> (has default, default)."""
    raw = data.get("arguments") or {}
    if not isinstance(raw, dict):
        raise ConfigError("'arguments' must map names to defaults", path=path)
    out: dict[str, tuple[bool, Any]] = {}
    for name, decl in raw.items():
        if isinstance(decl, dict):
            unknown = sorted(set(decl) - {"default", "description"})
            if unknown:
                message = (
                    f"argument {name!r}: unknown keys {unknown!r}; valid: default, description"
                )
                raise ConfigError(message, path=path)
            out[str(name)] = ("default" in decl, decl.get("default"))
        else:
            out[str(name)] = (True, decl)
    return out


def _substitute(value: Any, args: Mapping[str, Any], path: Path, context: str,
                later: Collection[str] = ()) -> Any:
    """``value`` with ``$(arg NAME)`` replaced from ``args``; ``later`` names arguments
    declared but not yet resolved (an argument's default may use only those before it)."""
    if isinstance(value, dict):
        return {k: _substitute(v, args, path, context, later) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, args, path, context, later) for v in value]
    if not isinstance(value, str) or "$(" not in value:
        return value

    def lookup(name: str) -> Any:
        if name in later:
            message = (f"{context}: $(arg {name}) is declared after it; a default can use "
                       "only the arguments declared before it (move it up)")
            raise ConfigError(message, path=path)
        if name not in args:
            message = f"{context}: $(arg {name}) is not a declared argument"
            raise ConfigError(message, path=path)
        return args[name]

    whole = _SUBST.fullmatch(value)
    if whole:
        return lookup(whole.group(1))
    text = _SUBST.sub(lambda m: str(lookup(m.group(1))), value)
    folder = _SUBST.match(value)
    if folder and value[folder.end():].startswith("/") and str(lookup(folder.group(1))) == "":
        # 'out_dir:=' made '$(arg out_dir)/masks.mcap' the root's /masks.mcap
        message = (f"{context}: {value!r} is {text!r}, at the filesystem root, because "
                   f"$(arg {folder.group(1)}) is empty; give {folder.group(1)} a folder")
        raise ConfigError(message, path=path)
    if "$(" in text:
        message = f"{context}: unknown substitution in {value!r}; use $(arg NAME)"
        raise ConfigError(message, path=path)
    return text


def _did_you_mean(unknown: Sequence[str], declared: Collection[str]) -> str:
    """`` (did you mean 'video'?)`` for the unknown names that look like a declared one
    (``viedo:=false``), so that a typo is not hunted for in the list of every argument."""
    close = {name: difflib.get_close_matches(name, list(declared), n=1, cutoff=0.6)
             for name in unknown}
    hints = [f"{match[0]!r} for {name!r}" if len(unknown) > 1 else repr(match[0])
             for name, match in close.items() if match]
    return f" (did you mean {', '.join(hints)}?)" if hints else ""


def _load(path: Path, given: Mapping[str, Any], stack: tuple[Path, ...], via: str = ""
          ) -> tuple[list[NodeSpec], str | None, dict[str, Any]]:
    """The nodes, overflow and arguments of ``path``; ``via`` names the include that
    passes ``given`` (``include #2 of outer.yaml``), '' for the command line."""
    resolved = path.resolve()
    if resolved in stack:
        chain = " -> ".join(p.name for p in (*stack, resolved))
        raise ConfigError(f"launch files include each other: {chain}", path=path)
    data = _read_yaml(path)
    declared = _declared_arguments(data, path)
    unknown = sorted(set(given) - set(declared))
    if unknown:
        valid = ", ".join(sorted(declared)) or "none"
        passed = f" (passed by {via})" if via else ""
        hint = _did_you_mean(unknown, declared)
        message = f"unknown arguments {unknown!r}{passed}{hint}; declared: {valid}"
        raise ConfigError(message, path=path)
    args: dict[str, Any] = {}
    names = list(declared)
    for i, (name, (has_default, default)) in enumerate(declared.items()):
        if name in given:
            args[name] = given[name]
        elif has_default:
            args[name] = _substitute(default, args, path, f"argument {name!r}", names[i:])
        elif via:
            message = (f"argument {name!r} is required: {via} does not pass it (add it to "
                       "that include's arguments)")
            raise ConfigError(message, path=path)
        else:
            raise ConfigError(f"argument {name!r} is required: pass {name}:=VALUE", path=path)

    nodes: list[NodeSpec] = []
    overflow = None
    for i, inc in enumerate(_entries(data, "include", path)):
        if isinstance(inc, dict):
            unknown = sorted(set(inc) - set(_INCLUDE_KEYS), key=str)
            if unknown:
                message = (
                    f"include #{i + 1}: unknown keys {unknown!r}; valid: {', '.join(_INCLUDE_KEYS)}"
                )
                raise ConfigError(message, path=path)
        if not isinstance(inc, dict) or "file" not in inc:
            raise ConfigError(f"include #{i + 1} needs a 'file' key", path=path)
        inc = _substitute(inc, args, path, f"include #{i + 1}")
        target = Path(str(inc["file"]))
        if not target.is_absolute():
            local = path.parent / target
            target = local if local.is_file() else LAUNCH_DIR / target
        if not target.is_file():
            raise ConfigError(f"include #{i + 1}: no launch file {str(inc['file'])!r}", path=path)
        inc_args = inc.get("arguments") or {}
        if not isinstance(inc_args, dict):
            raise ConfigError(f"include #{i + 1}: 'arguments' must be a mapping", path=path)
        inc_nodes, inc_overflow, _ = _load(target, inc_args, (*stack, resolved),
                                           f"include #{i + 1} of {path.name}")
        nodes += inc_nodes
        overflow = overflow or inc_overflow

    for i, raw in enumerate(_entries(data, "nodes", path)):
        nodes += _node_spec(raw, i, args, path)

    if data.get("qos") is not None:
        qos = _substitute(data["qos"], args, path, "qos")
        if not isinstance(qos, dict) or set(qos) - {"overflow"}:
            raise ConfigError(f"qos takes only 'overflow', got {qos!r}", path=path)
        if "overflow" in qos:
            given = qos["overflow"]
            if not isinstance(given, str) or given not in OVERFLOW_POLICIES:
                # 'overflow:=' (an empty shell variable) used to mean drop_oldest, silently
                message = (f"qos overflow {given!r} is not one of "
                           f"{', '.join(OVERFLOW_POLICIES)}")
                raise ConfigError(message, path=path)
            overflow = str(given)
    return nodes, overflow, args


def _node_spec(raw: Any, i: int, args: Mapping[str, Any], path: Path) -> list[NodeSpec]:
    if not isinstance(raw, dict):
        raise ConfigError(f"node #{i + 1}: expected a mapping, got {raw!r}", path=path)
    name = str(raw.get("name") or raw.get("type") or f"#{i + 1}")
    unknown = sorted(set(raw) - set(_NODE_KEYS))
    if unknown:
        message = f"node {name!r}: unknown keys {unknown!r}; valid: {', '.join(_NODE_KEYS)}"
        raise ConfigError(message, path=path)
    spec = _substitute(raw, args, path, f"node {name!r}")
    name = str(spec.get("name") or spec.get("type") or f"#{i + 1}")
    if "type" not in spec:
        raise ConfigError(f"node {name!r}: parameter 'type' is missing", path=path)
    enabled = _typed(spec.get("enabled", True))
    if not isinstance(enabled, bool):
        message = f"node {name!r}: 'enabled' must be true or false, got {enabled!r}"
        raise ConfigError(message, path=path)
    if not enabled:
        return []
    params = spec.get("parameters") or {}
    remaps = spec.get("remappings") or {}
    if not isinstance(params, dict) or not isinstance(remaps, dict):
        message = f"node {name!r}: 'parameters' and 'remappings' must be mappings"
        raise ConfigError(message, path=path)
    return [NodeSpec(str(spec["type"]), name, dict(params),
                     {str(k): str(v) for k, v in remaps.items()}, path)]


def load_launch(
    file: str | PathLike[str], arguments: Mapping[str, Any] | None = None
) -> LaunchDescription:
    """Read a launch file (and its includes) with ``arguments`` applied."""
    path = find_launch_file(file)
    nodes, overflow, args = _load(path, dict(arguments or {}), ())
    return LaunchDescription(path, tuple(nodes), overflow or "drop_oldest", args)


def describe_arguments(file: str | PathLike[str]) -> str:
    """The arguments ``file`` declares, one line each: name, default (as written) or
    ``required``, description; what ``ros2 launch --show-args`` lists (the descriptions
    were shown nowhere)."""
    path = find_launch_file(file)
    data = _read_yaml(path)
    declared = _declared_arguments(data, path)
    raw = data.get("arguments") or {}
    lines = [f"arguments of {path} (pass them as name:=value):"]
    for name, (has_default, default) in declared.items():
        decl = next((d for k, d in raw.items() if str(k) == name), None)
        text = decl.get("description") if isinstance(decl, dict) else None
        shown = f"default {_shown(default)}" if has_default else "required"
        lines.append(f"  {name} ({shown})" + (f": {text}" if text else ""))
    if not declared:
        lines.append("  none")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    """A default as the file wrote it: an unquoted scalar's text, a string quoted."""
    return str(value) if isinstance(value, Scalar) else repr(value)


def build_graph(desc: LaunchDescription) -> Graph:
    """Create every node of ``desc`` (parameters validated); call ``setup`` then ``run``."""
    from drivingseg.node.registry import NODE_TYPES

    graph = Graph(overflow=desc.overflow, path=desc.path)
    seen: dict[str, NodeSpec] = {}
    for spec in desc.nodes:
        origin = "" if spec.path.resolve() == desc.path.resolve() else spec.path.name
        first = seen.setdefault(spec.name, spec)
        if first is not spec:  # two includes (or an include and this file) name alike
            message = (f"{where(spec.name, spec.type, None, origin)}: a node of that name "
                       f"already comes from {first.path.name} ({first.type}); rename one")
            raise ConfigError(message, path=desc.path)
        cls = NODE_TYPES.get(spec.type)
        if cls is None:
            message = (
                f"{where(spec.name, spec.type, 'type', origin)}: unknown node type "
                f"{spec.type!r}; known: {', '.join(NODE_TYPES)}"
            )
            raise ConfigError(message, path=desc.path)
        graph.add(cls, spec.name, spec.parameters, remappings=spec.remappings, path=desc.path,
                  origin=origin)
    return graph
