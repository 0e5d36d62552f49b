"""Loading strategies from where users keep them: a built-in name, ``path/file.py[:Class]``,
``package.module:Class``, or a name an installed package publishes in the ``tape.strategies``
entry-point group.

Loading reads and executes code, so it lives here and not in ``events/``. A loaded class is installed in
the core's registry under its canonical spec: the resolved target, ``@`` and the first 12 hex digits of
the sha256 of its source. Configs, run ids and job ids carry that spec, so edited code is a new run.
The source travels with the spec (:class:`StrategyCode`) so Ray workers that lack the file can run it.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import linecache
import re
import sys
import types
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec

from tape.events.errors import ConfigError, StrategyError
from tape.events.strategies import LOADED, REGISTRY, install
from tape.events.strategies.base import OUTPUT_KINDS, Strategy

ENTRY_POINT_GROUP = "tape.strategies"
_HASHED = re.compile(r"^(?P<target>.+)@(?P<sha>[0-9a-f]{12})$")

# Files of loaded user strategies: an error whose traceback passes through them is the user's.
USER_FILES: set[str] = set()
_CODES: dict[str, StrategyCode] = {}


class StrategyCode(msgspec.Struct, frozen=True, kw_only=True):
    """A resolved strategy: canonical spec, where it came from, and (for user code) its source."""

    spec: str  # what configs record: a built-in's name, or "<target>@<sha12>"
    kind: str  # built-in | file | module | entry point
    location: str  # the file, the module, or the distribution and its target
    class_name: str
    sha256: str = ""  # of the source text; "" for a built-in (part of the code version)
    source: str = ""
    module: str = ""  # the module name the source runs as

    def origin(self) -> dict[str, str]:
        """What RunStarted records about the strategy's provenance, its source included (so a re-run
        can run the code the run ran, whatever became of the file)."""
        return {
            "kind": self.kind,
            "location": self.location,
            "class": self.class_name,
            "sha256": self.sha256,
            "source": self.source,
        }


def split_spec(spec: str) -> tuple[str, str]:
    """``target@sha12`` -> (target, sha12); a spec without a hash -> (spec, "")."""
    found = _HASHED.match(spec)
    return (found["target"], found["sha"]) if found else (spec, "")


def load_strategy(spec: str) -> StrategyCode:
    """Resolve ``spec`` to a class, install it in the core's registry, and describe where it came from.

    A hash suffix in ``spec`` is ignored here: the code as it is now is loaded (compare ``sha256``).
    """
    spec = spec.strip()
    if not spec:
        raise ConfigError("--strategy is empty")
    target, _ = split_spec(spec)
    if target in REGISTRY:
        cls = REGISTRY[target]
        return StrategyCode(spec=target, kind="built-in", location=cls.__module__, class_name=cls.__name__)
    if _is_file(target):
        path_text, _, class_name = _split_class(target)
        return _load_file(Path(path_text).expanduser(), class_name)
    if ":" in target:
        module_name, _, class_name = target.partition(":")
        return _load_module(module_name.strip(), class_name.strip(), kind="module", key=None)
    point = _entry_points().get(target)
    if point is None:
        raise ConfigError(
            f"unknown strategy {target!r}; known strategies: {', '.join(sorted(REGISTRY))}"
            + (f", {', '.join(sorted(_entry_points()))}" if _entry_points() else "")
            + " (or a file: path/to/file.py[:Class], a module: package.module:Class)"
        )
    module_name, _, class_name = point.value.partition(":")
    dist = point.dist.name if point.dist is not None else "?"
    return _load_module(module_name, class_name, kind="entry point", key=target, dist=dist)


def resolve(spec: str) -> str:
    """The canonical spec of ``spec`` (loading it)."""
    return load_strategy(spec).spec


def code_for(spec: str) -> StrategyCode:
    """The loaded code behind a canonical spec (loading it when this process has not yet)."""
    if spec in _CODES:
        return _CODES[spec]
    if spec in REGISTRY:
        return load_strategy(spec)
    code = load_strategy(spec)
    _, wanted = split_spec(spec)
    if wanted and code.sha256[:12] != wanted:
        raise ConfigError(
            f"strategy code changed: {split_spec(spec)[0]} is now {code.sha256[:12]}, "
            f"the config names {wanted}"
        )
    return code


def user_specs(strategy: str, params: dict[str, Any]) -> list[str]:
    """The user strategies a config names: its strategy and, for an ensemble, its members."""
    names = [strategy]
    if strategy == "ensemble":
        names += [m.strip() for m in str(params.get("members", "")).split(",") if m.strip()]
    return [n for n in names if n not in REGISTRY]


def strategies_of(config: Any) -> list[str]:
    """:func:`user_specs` of a BacktestConfig."""
    return user_specs(config.strategy, config.params)


def codes_for(strategy: str, params: dict[str, Any]) -> list[StrategyCode]:
    """Every user code a config needs (its strategy and, for an ensemble, the members): what a worker
    must install before it can run the config."""
    return [code_for(n) for n in user_specs(strategy, params)]


def install_codes(codes: list[StrategyCode]) -> None:
    """Install shipped strategy code in this process (a Ray worker): exec its source, no file needed."""
    for code in codes:
        if code.spec in LOADED:
            continue
        cls = _exec_source(code.source, code.location, code.module, code.class_name)
        install(code.spec, cls, code.origin())
        _CODES[code.spec] = code


def code_changed(spec: str, origin: dict[str, str]) -> tuple[str, bool]:
    """For a re-run of ``spec`` recorded with ``origin``: a note when the strategy's code is no longer
    the code the run ran ("" when it is), and whether the stored code was installed to re-run with."""
    target, recorded = split_spec(spec)
    if not recorded:
        return "", True
    try:
        now = load_strategy(target).sha256[:12]
    except (ConfigError, StrategyError):
        now = "(cannot be loaded)"
    if now == recorded:
        return "", True
    note = f"strategy code changed since the run: hash {recorded} → {now}; "
    source = origin.get("source", "")
    if not source or hashlib.sha256(source.encode()).hexdigest()[:12] != recorded:
        return note + "re-running the stored code is not possible (the run did not keep it)", False
    install_codes(
        [
            StrategyCode(
                spec=spec,
                kind=origin.get("kind", "file"),
                location=origin.get("location", target),
                class_name=origin.get("class", ""),
                sha256=origin.get("sha256", ""),
                source=source,
                module=f"tape_stored_{recorded}",
            )
        ]
    )
    return note + "re-running the code stored with the run", True


def user_strategies() -> list[StrategyCode]:
    """Built-ins and the strategies installed packages publish, as `tape strategies` lists them."""
    out = [load_strategy(name) for name in sorted(REGISTRY)]
    for name in sorted(_entry_points()):
        try:
            out.append(load_strategy(name))
        except (ConfigError, StrategyError) as exc:
            out.append(
                StrategyCode(spec=name, kind="entry point", location=f"failed to load: {exc}", class_name="")
            )
    return out


# --------------------------------------------------------------------------- loading


def _is_file(target: str) -> bool:
    path_text = _split_class(target)[0]
    return path_text.endswith(".py") or "/" in path_text or "\\" in path_text


def _split_class(target: str) -> tuple[str, str, str]:
    """``dir/file.py:Class`` -> (``dir/file.py``, ":", ``Class``); the class part is optional."""
    head, sep, tail = target.rpartition(":")
    if sep and tail and "/" not in tail and "\\" not in tail and not tail.endswith(".py"):
        return head, sep, tail.strip()
    return target, "", ""


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _load_file(path: Path, class_name: str) -> StrategyCode:
    if not path.is_file():
        raise ConfigError(f"strategy file not found: {path}")
    location = str(path.resolve())
    source = path.read_text(encoding="utf-8")
    sha = hashlib.sha256(source.encode()).hexdigest()
    module = f"tape_user_{sha[:12]}_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
    cls = _exec_source(source, location, module, class_name)
    code = StrategyCode(
        spec=f"{location}:{cls.__name__}@{sha[:12]}",
        kind="file",
        location=location,
        class_name=cls.__name__,
        sha256=sha,
        source=source,
        module=module,
    )
    return _register(code, cls)


def _load_module(
    module_name: str, class_name: str, *, kind: str, key: str | None, dist: str = ""
) -> StrategyCode:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(
                f"strategy module {module_name!r} cannot be imported: no module {exc.name!r}"
            ) from None
        raise _as_user_error(exc, f"importing {module_name}") from None
    except SyntaxError as exc:
        raise _syntax_error(exc) from None
    except Exception as exc:
        raise _as_user_error(exc, f"importing {module_name}") from None
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        raise ConfigError(f"strategy module {module_name!r} has no readable source to hash") from None
    location = str(getattr(module, "__file__", "") or module_name)
    USER_FILES.add(location)
    cls = _pick_class(module, class_name, module_name, defined_in=module.__name__)
    sha = hashlib.sha256(source.encode()).hexdigest()
    target = key if key is not None else f"{module_name}:{cls.__name__}"
    code = StrategyCode(
        spec=f"{target}@{sha[:12]}",
        kind=kind,
        location=f"{dist}: {module_name}:{cls.__name__}"
        if kind == "entry point"
        else f"{module_name} ({location})",
        class_name=cls.__name__,
        sha256=sha,
        source=source,
        module=module.__name__,
    )
    return _register(code, cls)


def _register(code: StrategyCode, cls: type[Strategy]) -> StrategyCode:
    install(code.spec, cls, code.origin())
    _CODES[code.spec] = code
    return code


def _exec_source(source: str, filename: str, module_name: str, class_name: str) -> type[Strategy]:
    """Run a strategy's source as module ``module_name`` (tracebacks point at ``filename``)."""
    existing = sys.modules.get(module_name)
    if existing is not None and getattr(existing, "__tape_source__", None) == source:
        return _pick_class(existing, class_name, filename, defined_in=module_name)
    try:
        compiled = compile(source, filename, "exec")
    except SyntaxError as exc:
        raise _syntax_error(exc) from None
    module = types.ModuleType(module_name)
    module.__file__ = filename
    module.__tape_source__ = source  # type: ignore[attr-defined]
    # The source is what runs, wherever the file is (or is not): tracebacks show its lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    USER_FILES.add(filename)
    sys.modules[module_name] = module  # msgspec and dataclasses look their module up while defining
    try:
        exec(compiled, module.__dict__)
    except Exception as exc:
        del sys.modules[module_name]
        raise _as_user_error(exc, f"loading {filename}") from None
    return _pick_class(module, class_name, filename, defined_in=module_name)


def _pick_class(module: types.ModuleType, class_name: str, where: str, *, defined_in: str) -> type[Strategy]:
    candidates = {
        name: obj
        for name, obj in vars(module).items()
        if isinstance(obj, type) and issubclass(obj, Strategy) and obj.__module__ == defined_in
    }
    if class_name:
        found = vars(module).get(class_name)
        if found is None:
            listed = ", ".join(sorted(candidates)) or "none"
            raise ConfigError(f"{where} has no class {class_name!r} (strategies in it: {listed})")
        if not (isinstance(found, type) and issubclass(found, Strategy)):
            raise ConfigError(f"{where}: {class_name} is not a subclass of tape.Strategy")
        return _validated(found, where)
    if not candidates:
        raise ConfigError(f"{where} defines no strategy: subclass tape.Strategy in it")
    if len(candidates) > 1:
        names = sorted(candidates)
        raise ConfigError(
            f"{where} defines {len(names)} strategies ({', '.join(names)}); name one: {where}:{names[0]}"
        )
    return _validated(next(iter(candidates.values())), where)


def _validated(cls: type[Strategy], where: str) -> type[Strategy]:
    """A class that can be a strategy: typed Params, warmup(), at least one form, a known output."""
    who = f"{where}:{cls.__name__}"
    params = cls.__dict__.get("Params", cls.Params)
    if not (isinstance(params, type) and issubclass(params, msgspec.Struct)):
        raise ConfigError(f"{who}: Params must be a msgspec.Struct class, got {params!r}")
    try:
        msgspec.inspect.type_info(params)
        msgspec.json.schema(params)
    except Exception as exc:
        why = " ".join(str(exc).split())  # msgspec's message spans lines; one line for the user
        raise ConfigError(f"{who}: bad Params ({why})") from None
    if getattr(cls.warmup, "__isabstractmethod__", False):
        raise ConfigError(f"{who} must define warmup() (bars needed before its first signal)")
    kinds = (*OUTPUT_KINDS, "weights")  # weights: a PortfolioStrategy (events/strategies/portfolio_base.py)
    if cls.output not in kinds:
        raise ConfigError(f"{who}: output {cls.output!r} is not one of {', '.join(kinds)}")
    if not any(cls.forms()):
        raise ConfigError(f"{who} must write signals(bars) or on_bar(bar) (or both)")
    return cls


# --------------------------------------------------------------------------- the user's errors


def _syntax_error(exc: SyntaxError) -> ConfigError:
    line = (exc.text or "").strip()
    return ConfigError(
        f"syntax error in {exc.filename}:{exc.lineno}: {exc.msg}" + (f": {line}" if line else "")
    )


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)\n(?P<code>[^\n]*)')


def user_frames(exc: BaseException) -> list[str]:
    """``file:line in func: code`` for each frame of the traceback inside a user's strategy file,
    outermost first (a Ray task's error carries the worker's traceback as text)."""
    import traceback

    text = "".join(traceback.format_exception(exc))
    frames = []
    for found in _FRAME.finditer(text):
        if found["file"] in USER_FILES:
            frames.append(f"{found['file']}:{found['line']} in {found['func']}: {found['code'].strip()}")
    return list(dict.fromkeys(frames))


def _root_cause(exc: BaseException) -> BaseException:
    cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError keeps the worker's exception
    return cause if isinstance(cause, BaseException) else exc


def _as_user_error(exc: BaseException, doing: str) -> StrategyError:
    frames = user_frames(exc)
    root = _root_cause(exc)
    where = f" at {frames[-1]}" if frames else ""
    return StrategyError(f"your strategy failed {doing}: {type(root).__name__}: {root}{where}")


def as_user_error(exc: BaseException) -> StrategyError | None:
    """The user's error if ``exc`` passed through their strategy code; None for tape's own errors."""
    if isinstance(exc, StrategyError):
        return exc
    frames = user_frames(exc)
    if not frames:
        return None
    root = _root_cause(exc)
    message = str(root).splitlines()[0] if str(root) else ""
    return StrategyError(f"your strategy raised {type(root).__name__}: {message} at {frames[-1]}")


__all__ = [
    "ENTRY_POINT_GROUP",
    "StrategyCode",
    "as_user_error",
    "code_for",
    "codes_for",
    "install_codes",
    "load_strategy",
    "resolve",
    "split_spec",
    "user_strategies",
]
