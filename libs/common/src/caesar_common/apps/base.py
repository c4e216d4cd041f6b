"""The app interface and the machinery every app shares.

An *app* is a source finder the service can run (Aegean, CAESAR, ...). Each app module
declares little more than a table of :class:`Option` objects (the v1 option names, types,
defaults, ranges, enum codes, categories) and, for runnable apps, how to turn validated
options into processes. Everything else is derived here from that one table, so the
four views of an app's options can never disagree:

* the v1 ``/app/<name>/describe`` document (:meth:`App.describe_v1`);
* a JSON Schema (draft 2020-12) for the v2 API and for clients (:meth:`App.json_schema`);
* validation of a client's ``job_inputs`` (:meth:`App.validate`), done by a strict
  pydantic model built from the table, with pydantic's errors translated into messages
  that name the option (the old service cast ``"5"`` to 5, let ``True`` through as 1,
  never checked ranges and silently dropped unknown options);
* the argv of the processes to run (:meth:`App.plan`), a list of separate arguments built
  from typed values, never a shell string.

Validation rules (a contract with the api service and its clients):

* unknown option names are rejected, all of them in one message;
* ``int`` options take JSON integers. A float with no fractional part (``5.0``) is
  accepted and normalised to ``5``: JSON itself does not distinguish the two (JSON Schema's
  ``"integer"`` accepts ``5.0`` too) and Python/numpy clients often send floats. Booleans,
  ``5.5`` and strings such as ``"5"`` are rejected;
* ``float`` options take JSON numbers (ints are normalised to floats), never booleans,
  strings, NaN or infinities;
* ``min``/``max`` are inclusive;
* enum options take exactly one of the allowed strings (case-sensitive);
* flags take JSON booleans only;
* cross-field rules (e.g. flood threshold <= seed threshold) are checked on the effective
  values, i.e. with defaults filled in, because that is what will run;
* every error names its option, and all errors are reported at once.
"""

from __future__ import annotations

import copy
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model
from pydantic_core import ErrorDetails, PydanticUndefined

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "NON_OPTION_INPUTS",
    "App",
    "ContainerApp",
    "NotGreaterThan",
    "Option",
    "OptionGroup",
    "OptionKind",
    "OptionValue",
    "ParameterError",
    "PlanContext",
    "Resources",
    "Step",
    "ValidatedParams",
    "installed_version",
]

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

NON_OPTION_INPUTS: Final = frozenset({"inputfile", "envfile", "run"})
"""Keys of a v1 ``job_inputs`` object that are not app options.

``inputfile`` names the input file (resolved by the api, never opened as given);
``envfile`` is ignored (the old service sourced it: a shell injection) and ``run`` is an
accepted no-op. The api removes these before calling :meth:`App.validate`, which would
otherwise reject them as unknown options.
"""

OptionKind = Literal["int", "float", "enum", "flag"]
OptionValue = int | float | str | bool

_V1_TYPE: Final[Mapping[OptionKind, str]] = MappingProxyType(
    {"int": "int", "float": "float", "enum": "str", "flag": "none"}
)
# Option names end up as ``--name=value`` arguments: keep them to characters that can
# never be read as anything but an option name.
_NAME_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*$")
_MAX_SHOWN_CHARS: Final = 40


class ParameterError(ValueError):
    """Options that an app refuses, with one human-readable message per problem.

    The api returns ``str(exc)`` as the v1 ``status`` (400) and ``errors`` in v2 problem
    details, so every message names the option it is about.

    Parameters
    ----------
    errors
        The messages, e.g. ``"Option 'seedthr' must be <= 10000 (got 20000)"``.
    """

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors: list[str] = list(errors)
        super().__init__("; ".join(self.errors))


@dataclass(frozen=True)
class Step:
    """One process of a job, run with the job directory as its working directory.

    Parameters
    ----------
    name
        Short label for logs and the run record (``"bane"``, ``"aegean"``).
    argv
        The full argument vector, executable first. It is passed to ``execve`` as is:
        no shell ever sees it, so option values cannot inject commands.
    env
        Variables to add to the runner's sanitised environment for this step.
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Fail at plan time, not at exec time, if an app builds a bad argv (a Path or a
        # float slipped in, or a NUL byte that execve would refuse).
        argv = tuple(self.argv)
        if not argv:
            raise ValueError(f"step {self.name!r} has an empty argv")
        for arg in argv:
            if not isinstance(arg, str) or "\x00" in arg:
                raise ValueError(f"step {self.name!r}: argv element {arg!r} is not a clean str")
        object.__setattr__(self, "argv", argv)
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))


@dataclass(frozen=True)
class PlanContext:
    """Where a job's processes find their input and put their output.

    Parameters
    ----------
    input_path
        The staged input image.
    job_dir
        The job's own working directory; every output goes there.
    bin_dir
        Where the apps' console scripts live (the runner passes
        ``Path(sys.executable).parent``), so the executables do not depend on ``PATH``.

    Notes
    -----
    Relative paths are made absolute against the current directory of the process that
    builds the context (with :meth:`pathlib.Path.absolute`, which keeps symlinks such as
    a staged input): steps run with ``cwd=job_dir``, where a relative path would point
    somewhere else.
    """

    input_path: Path
    job_dir: Path
    bin_dir: Path

    def __post_init__(self) -> None:
        for label in ("input_path", "job_dir", "bin_dir"):
            object.__setattr__(self, label, Path(getattr(self, label)).absolute())


@dataclass(frozen=True)
class Resources:
    """What a job needs from its executor: the scheduler uses it to pick a slot.

    Parameters
    ----------
    cores
        CPU cores the job will keep busy.
    memory_mb
        Peak resident memory to reserve, in MiB.
    """

    cores: int
    memory_mb: int


@dataclass(frozen=True)
class ValidatedParams:
    """Options that passed :meth:`App.validate`, normalised to their declared types.

    Parameters
    ----------
    app
        Name of the app that validated them (``plan`` refuses another app's params).
    given
        What the client sent, normalised (``5`` -> ``5.0`` for a float option), in the
        app's option order. This is what the api echoes back and stores with the job;
        running ``validate`` on it again gives the same result, which is how the runner
        rebuilds the params from a stored job.
    effective
        ``given`` plus the default of every option not given: the values that will run.
    """

    app: str
    given: Mapping[str, OptionValue]
    effective: Mapping[str, OptionValue]


@dataclass(frozen=True)
class Option:
    """One option of an app, as the v1 service listed it.

    Instances are normally made with :class:`OptionGroup`, which fills in the category.

    Parameters
    ----------
    name
        The v1 option name clients send (``"seedthr"``, ``"fit-maxcomponents"``).
    kind
        ``"int"``, ``"float"``, ``"enum"`` (a string from a fixed list) or ``"flag"``
        (a boolean that adds ``--name`` when true).
    description
        One line for describe and the schema. For value options the default is appended
        as ``(default=...)``, as the old service showed it.
    default
        The default, as the v1 describe showed it (``5`` for a float option is kept as
        ``5`` there; validated values are ``5.0``). Flags default to ``False``.
    minimum, maximum
        Inclusive range of a number option, or ``None``.
    choices
        For enums: ``(value, code)`` pairs; the code is what goes on the command line
        (``("Median", "2")``). Equal to the value when the tool takes it as is.
    category, subcategory
        Grouping shown by v1 describe (``"COMPACT-SOURCES"`` / ``"FITTING"``).
    advanced
        ``True``/``False`` for the v1 ``advanced`` mark (1/0); ``None`` for apps that
        had no grouping at all (the key is then left out of describe).
    mandatory
        Whether the option must be given. No v1 option is.
    """

    name: str
    kind: OptionKind
    description: str
    default: OptionValue | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    choices: tuple[tuple[str, str], ...] = ()
    category: str | None = None
    subcategory: str | None = None
    advanced: bool | None = None
    mandatory: bool = False

    def __post_init__(self) -> None:
        # Check the table itself at import time: a typo in a default or a range would
        # otherwise only show up as a confusing rejection of a valid request.
        problem = self._table_problem()
        if problem:
            raise ValueError(f"bad option spec {self.name!r}: {problem}")

    def _table_problem(self) -> str | None:
        if not _NAME_RE.fullmatch(self.name):
            return "name must be letters, digits and single dashes"
        if self.kind == "flag":
            if self.default is not False or self.minimum is not None or self.maximum is not None:
                return "a flag has default False and no range"
            return None
        if self.kind == "enum":
            values = self.allowed_values
            if not values or len(set(values)) != len(values):
                return "an enum needs distinct values"
            if self.default not in values:
                return "enum default is not an allowed value"
            return None
        if self.choices:
            return "only enums have choices"
        if isinstance(self.default, bool) or not isinstance(self.default, int | float):
            return "a number option needs a numeric default"
        if self.kind == "int" and not float(self.default).is_integer():
            return "an int option needs an integral default"
        lo = -math.inf if self.minimum is None else self.minimum
        hi = math.inf if self.maximum is None else self.maximum
        if not lo <= self.default <= hi:
            return "default outside [minimum, maximum]"
        return None

    @property
    def allowed_values(self) -> tuple[str, ...]:
        """The strings an enum option accepts, in the documented order."""
        return tuple(value for value, _ in self.choices)

    @property
    def typed_default(self) -> OptionValue | None:
        """The default converted to the option's type (``5`` -> ``5.0`` for floats)."""
        if self.default is None or isinstance(self.default, bool | str):
            return self.default
        return int(self.default) if self.kind == "int" else float(self.default)

    @property
    def full_description(self) -> str:
        """The description with ``(default=...)`` appended for value options."""
        if self.kind == "flag" or self.default is None:
            return self.description
        return f"{self.description} (default={self.default})"

    def describe_v1(self) -> dict[str, Any]:
        """This option's entry in the v1 describe document (keys only where they apply)."""
        entry: dict[str, Any] = {
            "description": self.full_description,
            "mandatory": self.mandatory,
            "type": _V1_TYPE[self.kind],
        }
        if self.default is not None:
            entry["default"] = self.default
        if self.minimum is not None:
            entry["min"] = self.minimum
        if self.maximum is not None:
            entry["max"] = self.maximum
        if self.kind == "enum":
            entry["enum"] = True
            entry["allowed_values"] = list(self.allowed_values)
        if self.category is not None:
            entry["category"] = self.category
        if self.subcategory is not None:
            entry["subcategory"] = self.subcategory
        if self.advanced is not None:
            entry["advanced"] = int(self.advanced)
        return entry

    def format_value(self, value: OptionValue) -> str:
        """The command-line text of a validated value.

        Enums become their code; floats use ``repr`` (the shortest text that reads back
        as the same double, which both C++ ``strtod`` and Python parse).
        """
        if self.kind == "enum":
            return dict(self.choices)[str(value)]
        if self.kind == "float":
            return repr(float(value))
        if self.kind == "int":
            return str(int(value))
        raise ValueError(f"option {self.name!r} is a flag and has no value text")


@dataclass(frozen=True)
class OptionGroup:
    """Builds the :class:`Option` objects of one v1 category compactly.

    ``OptionGroup("IMGBKG").number("bmaj", 10, 0, 3600, "...", advanced=True)`` reads
    almost like the option list of the old service, which keeps each app module a
    table. A group without a category is for apps whose v1 describe had no grouping
    (mrcnn): their options get neither ``category`` nor ``advanced``.
    """

    category: str | None = None
    subcategory: str | None = None

    def _option(self, advanced: bool, **kwargs: Any) -> Option:
        if self.category is None and advanced:
            raise ValueError("only grouped options can be marked advanced")
        return Option(
            category=self.category,
            subcategory=self.subcategory,
            advanced=advanced if self.category is not None else None,
            **kwargs,
        )

    def flag(self, name: str, description: str, *, advanced: bool = False) -> Option:
        """A boolean option that adds ``--name`` when true."""
        return self._option(advanced, name=name, kind="flag", description=description, default=False)

    def integer(
        self,
        name: str,
        default: int,
        minimum: int | None,
        maximum: int | None,
        description: str,
        *,
        advanced: bool = False,
    ) -> Option:
        """An ``int`` option with an inclusive range."""
        return self._option(
            advanced,
            name=name,
            kind="int",
            description=description,
            default=default,
            minimum=minimum,
            maximum=maximum,
        )

    def number(
        self,
        name: str,
        default: int | float,
        minimum: int | float | None,
        maximum: int | float | None,
        description: str,
        *,
        advanced: bool = False,
    ) -> Option:
        """A ``float`` option with an inclusive range."""
        return self._option(
            advanced,
            name=name,
            kind="float",
            description=description,
            default=default,
            minimum=minimum,
            maximum=maximum,
        )

    def beam(self) -> tuple[Option, Option, Option]:
        """``bmaj``, ``bmin`` (arcsec) and ``bpa`` (deg): the beam when the header has none.

        Every finder needs the restoring beam; images without BMAJ/BMIN (the api refuses
        them at submit otherwise) run when the user gives it. Pair with :data:`BEAM_RULE`.
        """
        return (
            self.number("bmaj", 0, 0, 36_000, "Beam major axis FWHM in arcsec (0 = from the header BMAJ)"),
            self.number("bmin", 0, 0, 36_000, "Beam minor axis FWHM in arcsec (0 = from the header BMIN)"),
            self.number("bpa", 0, -180, 180, "Beam position angle in degrees east of north (with bmaj/bmin)"),
        )

    def choice(
        self,
        name: str,
        default: str,
        choices: Mapping[str, str] | Sequence[str],
        description: str,
        *,
        advanced: bool = False,
    ) -> Option:
        """A string enum; ``choices`` maps each value to its command-line code.

        A plain sequence means the tool takes the values as they are.
        """
        pairs = (
            tuple(choices.items())
            if isinstance(choices, Mapping)
            else tuple((value, value) for value in choices)
        )
        return self._option(
            advanced, name=name, kind="enum", description=description, default=default, choices=pairs
        )


@dataclass(frozen=True)
class NotGreaterThan:
    """Cross-field rule: the effective value of ``lower`` must be <= that of ``upper``.

    JSON Schema cannot express this, so it is listed in the schema's description and
    checked by :meth:`App.validate` only.

    Parameters
    ----------
    lower, upper
        Option names.
    reason
        Why, for the error message (``"islands grow from seeds down to the flood
        threshold"``).
    """

    lower: str
    upper: str
    reason: str

    def check(self, given: Mapping[str, OptionValue], effective: Mapping[str, OptionValue]) -> str | None:
        """Return the error message if the rule is broken, else ``None``."""
        low, high = effective.get(self.lower), effective.get(self.upper)
        if not isinstance(low, int | float) or not isinstance(high, int | float):
            return None
        if low <= high:
            return None

        def shown(name: str, value: int | float) -> str:
            suffix = "" if name in given else " (default)"
            return f"{name}={_show(value)}{suffix}"

        return (
            f"Option '{self.lower}' must be <= option '{self.upper}': {self.reason} "
            f"(got {shown(self.lower, low)}, {shown(self.upper, high)})"
        )


BEAM_RULE = NotGreaterThan("bmin", "bmaj", "the minor axis cannot exceed the major axis")
"""The rule that goes with :meth:`OptionGroup.beam`."""


def installed_version(distribution: str) -> str:
    """Version of an installed Python distribution, or ``"unknown"`` if it is missing.

    Apps report the version of the tool that actually runs, so a catalogue can be traced
    back to the finder release that made it.
    """
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def _integral_float_to_int(value: Any) -> Any:
    """Accept ``5.0`` for an int option (JSON does not tell 5 from 5.0); leave the rest
    to the strict ``int`` check, which refuses bools, strings and ``5.5``."""
    if type(value) is float and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


_StrictIntFromJson = Annotated[int, BeforeValidator(_integral_float_to_int)]


def _show(value: Any) -> str:
    """A client value as JSON-ish text for a message, cut short if it is huge."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        text = str(int(value))
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > _MAX_SHOWN_CHARS:
        text = text[: _MAX_SHOWN_CHARS - 3] + "..."
    return text


def _field_name(option_name: str) -> str:
    # Prefixed so that no option name can shadow a BaseModel attribute ("copy", "json").
    return "opt_" + option_name.replace("-", "_")


class App(ABC):
    """A source finder the service knows, defined by its option table.

    Subclasses set the class attributes below and implement :meth:`plan` and
    :meth:`resources`; validation, describe and the JSON Schema come from ``options``.
    One instance per app lives in the registry; instances hold no per-job state.

    Attributes
    ----------
    name
        The v1 app name (``"aegean"``).
    version
        Version of the tool that runs (the installed package, or the image tag).
    description
        One paragraph for humans.
    executors
        Executor kinds able to run it: ``{"local", "slurm", "k8s"}`` for tools installed
        with the service, ``{"k8s"}`` for apps that only exist as container images.
    default_wall_time_s
        Wall-time limit when the job does not ask for one.
    container_image
        Image reference for container-only apps, else ``None``.
    options
        The option table, in the order describe lists it.
    rules
        Cross-field rules checked after the per-option checks.
    """

    name: str
    version: str
    description: str
    executors: frozenset[str]
    default_wall_time_s: int
    container_image: str | None = None
    options: tuple[Option, ...]
    rules: tuple[NotGreaterThan, ...] = ()

    # -- derived views ------------------------------------------------------------------

    @cached_property
    def _options_by_name(self) -> Mapping[str, Option]:
        by_name = {option.name: option for option in self.options}
        if len(by_name) != len(self.options):
            raise ValueError(f"app {self.name!r} declares an option twice")
        for rule in self.rules:
            for name in (rule.lower, rule.upper):
                if name not in by_name:
                    raise ValueError(f"app {self.name!r}: rule refers to unknown {name!r}")
        return MappingProxyType(by_name)

    @cached_property
    def _model(self) -> type[BaseModel]:
        """The strict pydantic model of the options object (built on first use)."""
        fields: dict[str, Any] = {}
        for option in self._options_by_name.values():
            fields[_field_name(option.name)] = (_annotation(option), _field(option))
        title = f"{self.name} options"
        model = create_model(
            f"{self.name.capitalize()}Options",
            __config__=ConfigDict(
                strict=True,
                extra="forbid",
                allow_inf_nan=False,
                frozen=True,
                title=title,
            ),
            **fields,
        )
        return cast(type[BaseModel], model)

    @cached_property
    def _schema(self) -> dict[str, Any]:
        schema = self._model.model_json_schema(by_alias=True, mode="validation")
        described = [self.description]
        if self.rules:
            described.append(
                "Also required (not expressible in JSON Schema): "
                + "; ".join(f"{r.lower} <= {r.upper}" for r in self.rules)
                + "."
            )
        return {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"urn:caesar-rest:app:{self.name}:options",
            "description": " ".join(described),
            **schema,
        }

    def option(self, name: str) -> Option:
        """The option called ``name`` (``KeyError`` if there is none)."""
        return self._options_by_name[name]

    def describe_v1(self) -> dict[str, dict[str, Any]]:
        """The v1 ``GET /app/<name>/describe`` document: option name -> description.

        A fresh dict each time, so callers may modify it.
        """
        return {option.name: option.describe_v1() for option in self.options}

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of the options object.

        Property names are the v1 option names; ``additionalProperties`` is false. The
        cross-field rules are stated in the top-level ``description``. Grouping is kept
        in ``x-category``, ``x-subcategory`` and ``x-advanced`` annotations and enum
        command-line codes are not exposed. A deep copy each time.
        """
        return copy.deepcopy(self._schema)

    # -- validation ---------------------------------------------------------------------

    def validate(self, options: Mapping[str, Any]) -> ValidatedParams:
        """Check a client's options and normalise them to their declared types.

        Parameters
        ----------
        options
            The decoded JSON object of options (v1 ``job_inputs`` without
            :data:`NON_OPTION_INPUTS`).

        Returns
        -------
        ValidatedParams
            ``given`` (what was sent, typed) and ``effective`` (with defaults).

        Raises
        ------
        ParameterError
            With every problem found, each naming its option.
        """
        if not isinstance(options, Mapping):
            raise ParameterError(
                [f"Options must be an object mapping option names to values (got {type(options).__name__})"]
            )
        odd_keys = [key for key in options if not isinstance(key, str)]
        if odd_keys:
            raise ParameterError(
                ["Option names must be strings (got " + ", ".join(map(_show, odd_keys)) + ")"]
            )
        raw: dict[str, Any] = dict(options)

        errors: list[str] = []
        rejected: set[str] = set()
        try:
            model = self._model.model_validate(raw)
        except ValidationError as exc:
            errors, rejected = self._translate(exc.errors(), raw)
            try:
                # Validate what is left, so that cross-field rules are checked too and
                # the client gets every problem in one answer.
                model = self._model.model_validate({k: v for k, v in raw.items() if k not in rejected})
            except ValidationError:  # only when a mandatory option is missing
                raise ParameterError(errors) from None

        given, effective = self._values(model)
        for rule in self.rules:
            if rule.lower in rejected or rule.upper in rejected:
                continue
            message = rule.check(given, effective)
            if message:
                errors.append(message)
        if errors:
            raise ParameterError(errors)
        return ValidatedParams(app=self.name, given=given, effective=effective)

    def _values(self, model: BaseModel) -> tuple[dict[str, OptionValue], dict[str, OptionValue]]:
        given: dict[str, OptionValue] = {}
        effective: dict[str, OptionValue] = {}
        for option in self.options:
            field_name = _field_name(option.name)
            value = getattr(model, field_name)
            if value is None:
                continue
            effective[option.name] = value
            if field_name in model.model_fields_set:
                given[option.name] = value
        return given, effective

    def _translate(
        self, details: Iterable[ErrorDetails], raw: Mapping[str, Any]
    ) -> tuple[list[str], set[str]]:
        """Turn pydantic's errors into one message per option, naming it."""
        unknown: list[str] = []
        messages: list[str] = []
        rejected: set[str] = set()
        for detail in details:
            name = str(detail["loc"][0]) if detail["loc"] else ""
            rejected.add(name)
            if detail["type"] == "extra_forbidden":
                unknown.append(name)
                continue
            option = self._options_by_name.get(name)
            if option is None:  # pragma: no cover - pydantic only reports known fields
                messages.append(f"Option '{name}' is invalid: {detail['msg']}")
                continue
            message = _message(option, detail, raw.get(name))
            if message not in messages:
                messages.append(message)
        if unknown:
            messages.insert(0, "Unknown option(s): " + ", ".join(unknown))
        return messages, rejected

    # -- running ------------------------------------------------------------------------

    @abstractmethod
    def plan(self, params: ValidatedParams, ctx: PlanContext) -> list[Step]:
        """The processes that run this app on ``ctx.input_path``, in order.

        Parameters
        ----------
        params
            Options validated by this app's :meth:`validate`.
        ctx
            Input, job directory and console-script directory.

        Returns
        -------
        list of Step
            Run one after another in ``ctx.job_dir``; the job fails at the first
            non-zero exit.
        """

    @abstractmethod
    def resources(self, params: ValidatedParams, image_bytes: int) -> Resources:
        """Cores and peak memory to reserve for a job on an image of ``image_bytes``."""

    def discardable_outputs(self, params: ValidatedParams) -> frozenset[str]:
        """Files (relative to the job dir) the runner may leave out of the outputs.

        Some tools must write intermediate files the client did not ask to keep (Aegean
        needs BANE's maps even without ``save-bkgmap``). Default: none.
        """
        return frozenset()

    def v1_argv(self, params: ValidatedParams) -> list[str]:
        """The options the client gave, as the old command lines took them.

        ``--name=value`` for each given value option (enum codes substituted) and
        ``--name`` for each flag given as true, in the app's option order. Defaults are
        not repeated: the tool applies its own, which are the documented ones.
        """
        self._check_params(params)
        args: list[str] = []
        for name, value in params.given.items():
            option = self._options_by_name[name]
            if option.kind == "flag":
                if value is True:
                    args.append(f"--{name}")
            else:
                args.append(f"--{name}={option.format_value(value)}")
        return args

    def _check_params(self, params: ValidatedParams) -> None:
        if params.app != self.name:
            raise ValueError(f"params were validated by app {params.app!r}, not {self.name!r}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.version}>"


def _annotation(option: Option) -> Any:
    base: Any
    if option.kind == "int":
        base = _StrictIntFromJson
    elif option.kind == "float":
        base = float
    elif option.kind == "flag":
        base = bool
    else:
        base = cast(Any, Literal)[option.allowed_values]
    return base


def _field(option: Option) -> Any:
    extra: dict[str, Any] = {}
    if option.category is not None:
        extra["x-category"] = option.category
    if option.subcategory is not None:
        extra["x-subcategory"] = option.subcategory
    if option.advanced is not None:
        extra["x-advanced"] = option.advanced
    return Field(
        PydanticUndefined if option.mandatory else option.typed_default,
        alias=option.name,
        title=option.name,
        description=option.full_description,
        ge=option.minimum,
        le=option.maximum,
        json_schema_extra=extra or None,
    )


def _message(option: Option, detail: ErrorDetails, value: Any) -> str:
    """The human message for one pydantic error on ``option``."""
    kind = detail["type"]
    name = option.name
    if kind == "missing":
        return f"Option '{name}' is mandatory"
    if kind in {"greater_than_equal", "less_than_equal"} or (
        # An int too large to become a double fails the float type check: it is really
        # out of range, so say that.
        kind == "float_type" and isinstance(value, int) and not isinstance(value, bool)
    ):
        too_small = option.minimum is not None and value < option.minimum
        if too_small:
            return f"Option '{name}' must be >= {_show(option.minimum)} (got {_show(value)})"
        return f"Option '{name}' must be <= {_show(option.maximum)} (got {_show(value)})"
    if kind == "finite_number":
        return f"Option '{name}' must be a finite number"
    if option.kind == "int":
        return f"Option '{name}' must be an integer"
    if option.kind == "float":
        return f"Option '{name}' must be a number"
    if option.kind == "flag":
        return f"Option '{name}' must be true or false"
    if option.kind == "enum":
        return f"Option '{name}' must be one of {', '.join(option.allowed_values)}"
    return f"Option '{name}' is invalid: {detail['msg']}"  # pragma: no cover


class ContainerApp(App):
    """An app that exists only as a container image (CAESAR, mrcnn, cutex).

    Only the Kubernetes executor (pool ``k8s``) runs these: each attempt is a Job whose
    container runs :attr:`App.container_image` (or the image the deployment maps the app
    to). A deployment without that pool still validates their options like any other
    app's, so v1 clients get the same answers as before, and the scheduler aborts their
    jobs with the reason. :meth:`plan` returns the command to run *inside* the image:
    the executable as found on the image's ``PATH``, then ``fixed_args``, the input file
    as ``<input_option>=<path>`` and :meth:`App.v1_argv`, exactly as the old service
    built the command line, but as a list.

    The memory model is a linear guess with a floor (``memory_floor_mb``,
    ``memory_base_mb + memory_per_image_mib * MiB``): these tools cannot run on the
    service's own machines, so nothing was measured.
    """

    executors = frozenset({"k8s"})
    default_wall_time_s = 3600
    command: tuple[str, ...]
    input_option: str = "--inputfile"
    memory_floor_mb: int = 2048
    memory_base_mb: int = 1024
    memory_per_image_mib: int = 32

    def plan(self, params: ValidatedParams, ctx: PlanContext) -> list[Step]:
        """The single command to run inside :attr:`App.container_image`."""
        self._check_params(params)
        argv = (*self.command, f"{self.input_option}={ctx.input_path}", *self.v1_argv(params))
        return [Step(self.name, argv)]

    def cores(self, params: ValidatedParams) -> int:
        """Cores the tool will use; one unless the app's options say otherwise."""
        return 1

    def resources(self, params: ValidatedParams, image_bytes: int) -> Resources:
        """:meth:`cores` and the linear memory guess described in the class docstring."""
        self._check_params(params)
        image_mib = max(image_bytes, 0) / 2**20
        memory = self.memory_base_mb + self.memory_per_image_mib * image_mib
        return Resources(cores=self.cores(params), memory_mb=max(self.memory_floor_mb, math.ceil(memory)))
