"""Custom payload mapping: any JSON object turned into the fields of an alert, without
code. Also the paths and condition operators that alert rules reuse.

    {"direct": {FIELD: SOURCE, …},
     "conditional": [{"if": [CONDITION, …], "then": {FIELD: SOURCE, …}}, …]}

SOURCE is {"path": "a.b.0.c"} or {"value": …}; CONDITION is {"path", "op", "value"}.
A path that finds nothing (see `present`) leaves the field as it was. Direct
assignments come first, then every block whose conditions all hold, in order, so later
blocks override earlier ones. See docs/mapping-and-rules.md.
"""

import functools
import json
import math
from dataclasses import dataclass, field

from django.db import models

from incidents.models import Incident
from integrations import generic
from integrations.alert_fields import AlertFields
from integrations.models import AlertType
from integrations.patterns import RegexError, compile_regex, regex_error, search

MISSING = object()


class Op(models.TextChoices):
    EQUALS = "equals", "equals"
    NOT_EQUALS = "not_equals", "does not equal"
    CONTAINS = "contains", "contains"
    MATCHES = "matches", "matches (regular expression)"
    EXISTS = "exists", "exists"
    GT = "gt", "greater than"
    LT = "lt", "less than"


class MappedField(models.TextChoices):
    MESSAGE = "message", "Message"
    SUMMARY = "summary", "Summary"
    ENTITY_ID = "entity_id", "Entity id"
    ALERT_TYPE = "alert_type", "Alert type"
    URGENCY = "urgency", "Urgency"
    PRIORITY = "priority", "Priority (id or name)"


OPS = tuple(Op.values)
FIELDS = tuple(MappedField.values)
ALERT_TYPES = tuple(AlertType.values)
URGENCIES = tuple(Incident.Urgency.values)


# --- Paths and values -----------------------------------------------------------------

def split_path(path: str) -> tuple[str, ...]:
    return tuple(path.split(".")) if path else ()


def is_index(part: str) -> bool:
    # ASCII only: str.isdigit also takes "²", which int() refuses. At most 18 digits: no
    # list is longer, and int() refuses more than 4,300 digits outright.
    digits = part.removeprefix("-")
    return digits.isascii() and digits.isdigit() and len(digits) <= 18


def lookup(document, path):
    """Follow a dotted path (`alerts.0.labels.alertname`, or its parts) through objects
    and lists; integers index lists (negative ones from the end). MISSING if it does not
    resolve."""
    current = document
    for part in split_path(path) if isinstance(path, str) else path:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and is_index(part):
            index = int(part)
            if not -len(current) <= index < len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def present(value) -> bool:
    """Whether a value found at a path counts as something: not missing, not null, not an
    empty or blank string. One definition for `exists` and for assignments, so a block
    `exists: false` on a field falls back exactly when assigning that field finds nothing
    (apprise sends `"title": ""`). Empty lists and objects are something: they are
    assigned as `[]` and `{}`."""
    if value is MISSING or value is None:
        return False
    return not isinstance(value, str) or bool(value.strip())


def as_text(value) -> str:
    """A value as alert text: objects and lists as compact JSON, true/false in lower case."""
    if value is MISSING or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value).strip()


def as_number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an int of hundreds of digits: not a usable threshold
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except (ValueError, OverflowError):
            return None
        return number if math.isfinite(number) else None
    return None


def same(actual, expected) -> bool:
    """Scalars compare as text, so a payload's 5 equals "5" and "true" equals true."""
    if isinstance(actual, dict | list) or isinstance(expected, dict | list):
        return actual == expected
    return as_text(actual) == as_text(expected)


class ConfigurationError(generic.InvalidPayload):
    """A saved mapping or rule that cannot run: a regex saved before RE2 or the length cap
    refused it. An InvalidPayload, so the event fails with this cause, names the condition,
    and can be reprocessed once the configuration is fixed."""


def holds(op: str, actual, expected, pattern=None) -> bool:
    """Whether `actual` (MISSING when the path did not resolve) satisfies the condition."""
    if op == Op.EXISTS:
        return present(actual) if expected is not False else not present(actual)
    if actual is MISSING or actual is None:
        # Nothing there equals nothing, contains nothing and compares with nothing.
        return op == Op.NOT_EQUALS
    if op == Op.EQUALS:
        return same(actual, expected)
    if op == Op.NOT_EQUALS:
        return not same(actual, expected)
    if op == Op.CONTAINS:
        if isinstance(actual, list):
            return any(same(item, expected) for item in actual)
        if isinstance(actual, dict):
            return as_text(expected) in actual
        return as_text(expected) in as_text(actual)
    if op == Op.MATCHES:
        return search(pattern, as_text(actual))
    number = as_number(actual)
    if number is None:
        return False
    return number > expected if op == Op.GT else number < expected


# --- Validation -----------------------------------------------------------------------

def path_error(path) -> str | None:
    if not isinstance(path, str) or not path.strip():
        return "must be a non-empty dotted path such as alerts.0.labels.severity"
    if any(not part for part in path.split(".")):
        return f"{path!r} has an empty part"
    return None


def op_value_error(op, value, has_value: bool) -> tuple[str, str] | None:
    """What is wrong with an operator and its value, as (the key at fault, the problem),
    or None. Shared with alert rules."""
    if not isinstance(op, str) or op not in OPS:  # a list or object is no op (nor hashable)
        return "op", f"unknown op {op!r} (one of {', '.join(OPS)})"
    if op == Op.EXISTS:
        if has_value and not isinstance(value, bool):
            return "value", "exists takes true or false"
        return None
    if not has_value:
        return "value", f"{op} needs a value"
    if op == Op.MATCHES:
        if not isinstance(value, str):
            return "value", "matches needs a regular expression string"
        problem = regex_error(value)
        if problem:
            return "value", problem
    if op in (Op.GT, Op.LT) and as_number(value) is None:
        return "value", f"{op} needs a number"
    if op == Op.CONTAINS and isinstance(value, dict | list):
        return "value", "contains needs a single value"
    return None


def condition_errors(condition, where: str) -> list[str]:
    if not isinstance(condition, dict):
        return [f"{where}: must be an object with path, op and value"]
    errors = []
    unknown = sorted(set(condition) - {"path", "op", "value"})
    if unknown:
        errors.append(f"{where}: unknown key(s) {', '.join(unknown)}")
    problem = path_error(condition.get("path"))
    if problem:
        errors.append(f"{where}.path: {problem}")
    problem = op_value_error(condition.get("op"), condition.get("value"), "value" in condition)
    if problem:
        errors.append(f"{where}.{problem[0]}: {problem[1]}")
    return errors


def literal_error(name: str, value) -> str | None:
    if name == MappedField.ALERT_TYPE:
        if as_text(value).lower() not in ALERT_TYPES:
            return f"{value!r} is not an alert type ({', '.join(ALERT_TYPES)})"
    elif name == MappedField.URGENCY:
        if as_text(value).lower() not in URGENCIES:
            return f"{value!r} is not an urgency ({', '.join(URGENCIES)})"
    elif name == MappedField.PRIORITY:
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
            return "must be a priority id or name"
    elif isinstance(value, dict | list | bool) or value is None:
        return "must be a string or a number"
    return None


def assignment_errors(assignments, where: str) -> list[str]:
    if not isinstance(assignments, dict):
        return [f"{where}: must be an object of FIELD: SOURCE"]
    errors = []
    for name, source in assignments.items():
        at = f"{where}.{name}"
        if name not in FIELDS:
            errors.append(f"{at}: unknown field {name!r} (one of {', '.join(FIELDS)})")
            continue
        if not isinstance(source, dict) or len(source) != 1 or not {"path", "value"} & set(source):
            errors.append(f'{at}: must be {{"path": "a.b"}} or {{"value": …}}')
        elif "path" in source:
            problem = path_error(source["path"])
            if problem:
                errors.append(f"{at}.path: {problem}")
        else:
            problem = literal_error(name, source["value"])
            if problem:
                errors.append(f"{at}.value: {problem}")
    return errors


def validate_mapping(mapping) -> list[str]:
    """Every problem of a mapping, each naming its place (`conditional[2].if[0].op: …`).
    None (mapping off) is valid."""
    if mapping is None:
        return []
    if not isinstance(mapping, dict):
        return ['must be null or an object {"direct": {…}, "conditional": […]}']
    errors = []
    unknown = sorted(set(mapping) - {"direct", "conditional"})
    if unknown:
        errors.append(f"unknown key(s) {', '.join(unknown)} (only direct and conditional)")
    errors += assignment_errors(mapping.get("direct", {}), "direct")
    blocks = mapping.get("conditional", [])
    if not isinstance(blocks, list):
        return errors + ["conditional: must be a list of {if, then} blocks"]
    for index, block in enumerate(blocks):
        at = f"conditional[{index}]"
        if not isinstance(block, dict) or set(block) != {"if", "then"}:
            errors.append(f"{at}: must be an object with exactly if and then")
            continue
        if not isinstance(block["if"], list):
            errors.append(f"{at}.if: must be a list of conditions")
        else:
            for number, condition in enumerate(block["if"]):
                errors += condition_errors(condition, f"{at}.if[{number}]")
        errors += assignment_errors(block["then"], f"{at}.then")
    return errors


# --- Evaluation -----------------------------------------------------------------------

def freeze(value) -> str:
    """A hashable stand-in for a JSON value (its canonical JSON text, which json encodes in
    C), to key the caches of compiled mappings and conditions."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Unhashed:
    """Carries the condition itself past lru_cache, which hashes every argument; the frozen
    key alone decides equality."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return 0

    def __eq__(self, other):
        return True


class Condition:
    """A condition made ready to test: its path split and its regex compiled once."""

    __slots__ = ("parts", "op", "value", "pattern")

    def __init__(self, parts: tuple, op: str, value, pattern=None):
        self.parts, self.op, self.value, self.pattern = parts, op, value, pattern

    @classmethod
    def compile(cls, condition: dict) -> "Condition":
        return _compile_condition(freeze(condition), Unhashed(condition))

    def test(self, document) -> bool:
        return holds(self.op, lookup(document, self.parts), self.value, self.pattern)


@functools.lru_cache(maxsize=4096)
def _compile_condition(key, wrapped: Unhashed) -> Condition:
    condition = wrapped.value
    op, value = condition["op"], condition.get("value")
    return Condition(
        split_path(condition["path"]), op,
        as_number(value) if op in (Op.GT, Op.LT) else value,
        compile_regex(value) if op == Op.MATCHES else None,
    )


@dataclass(frozen=True)
class Source:
    where: str  # `direct.message`, `conditional[1].then.alert_type`
    parts: tuple | None
    value: object = None

    def describe(self) -> str:
        if self.parts is None:
            return f"{self.where} (value {self.value!r})"
        return f"{self.where} (path {'.'.join(self.parts)!r})"

    def resolve(self, document):
        return self.value if self.parts is None else lookup(document, self.parts)


def compile_assignments(assignments: dict, where: str) -> list[tuple[str, Source]]:
    compiled = []
    for name, source in assignments.items():
        at = f"{where}.{name}"
        if "path" in source:
            compiled.append((name, Source(at, split_path(source["path"]))))
        else:
            compiled.append((name, Source(at, None, source["value"])))
    return compiled


@dataclass
class MappingResult:
    values: dict = field(default_factory=dict)  # field → the value found
    origins: dict = field(default_factory=dict)  # field → the Source that set it
    # field → sources that were tried but found nothing, for the empty-message error.
    misses: dict = field(default_factory=dict)
    matched_blocks: list = field(default_factory=list)


class CompiledMapping:
    """A validated mapping made ready to apply to many documents."""

    def __init__(self, mapping: dict):
        self.direct = compile_assignments(mapping.get("direct", {}), "direct")
        self.blocks = [
            ([self._condition(c, f"conditional[{index}].if[{number}]")
              for number, c in enumerate(block["if"])],
             compile_assignments(block["then"], f"conditional[{index}].then"))
            for index, block in enumerate(mapping.get("conditional", []))
        ]

    @staticmethod
    def _condition(condition: dict, where: str) -> Condition:
        try:
            return Condition.compile(condition)
        except RegexError as exc:
            raise ConfigurationError({"mapping": f"{where}.value: {exc}"}) from None

    @classmethod
    def of(cls, mapping: dict) -> "CompiledMapping":
        """The compiled mapping, from a per-process cache keyed by its content."""
        return _compile_mapping(freeze(mapping), Unhashed(mapping))

    def _assign(self, result: MappingResult, assignments, document) -> None:
        for name, source in assignments:
            value = source.resolve(document)
            if not present(value):
                result.misses.setdefault(name, []).append(source)
                continue
            result.values[name] = value
            result.origins[name] = source

    def apply(self, document) -> MappingResult:
        result = MappingResult()
        self._assign(result, self.direct, document)
        for index, (conditions, assignments) in enumerate(self.blocks):
            if all(condition.test(document) for condition in conditions):
                result.matched_blocks.append(index)
                self._assign(result, assignments, document)
        return result


@functools.lru_cache(maxsize=256)
def _compile_mapping(key, wrapped: Unhashed) -> CompiledMapping:
    return CompiledMapping(wrapped.value)


def empty_message_error(result: MappingResult) -> str:
    tried = result.misses.get(MappedField.MESSAGE, [])
    if not tried:
        return ("the mapping produced no message: no direct or matching conditional "
                "assignment sets message")
    found = "; ".join(f"{source.describe()} found nothing" for source in tried)
    return f"the mapping produced an empty message: {found}"


def alert_fields(mapping: dict, document: dict) -> AlertFields:
    """The alert a mapped document makes; raises generic.InvalidPayload naming the source
    of an empty message or an invalid alert type, so the event fails with that error."""
    result = CompiledMapping.of(mapping).apply(document)
    return fields_from_result(result, document)


def fields_from_result(result: MappingResult, document: dict) -> AlertFields:
    values, origins = result.values, result.origins
    if MappedField.MESSAGE not in values:
        raise generic.InvalidPayload({"message": empty_message_error(result)})
    errors = {}
    alert_type = as_text(values.get(MappedField.ALERT_TYPE, AlertType.INFO)).lower()
    if alert_type not in ALERT_TYPES:
        errors["alert_type"] = (
            f"{origins[MappedField.ALERT_TYPE].describe()} gave {alert_type!r}, which is not "
            f"one of {', '.join(ALERT_TYPES)}"
        )
    if errors:
        raise generic.InvalidPayload(errors)
    fields = generic.validate({
        "message": as_text(values[MappedField.MESSAGE]),
        "summary": as_text(values.get(MappedField.SUMMARY)),
        "entity_id": as_text(values.get(MappedField.ENTITY_ID)) or None,
        "alert_type": alert_type,
        # With mapping on, the original body is kept whole as the alert's payload.
        "payload": document,
    })
    warnings = []
    if MappedField.URGENCY in values:
        urgency = as_text(values[MappedField.URGENCY]).lower()
        if urgency in URGENCIES:
            fields.urgency = urgency
        else:
            warnings.append(
                f"{origins[MappedField.URGENCY].describe()} gave {urgency!r}, which is not "
                f"an urgency ({', '.join(URGENCIES)}); ignored."
            )
    if MappedField.PRIORITY in values:
        fields.priority = values[MappedField.PRIORITY]
    fields.extra["mapping"] = {"matched_blocks": result.matched_blocks}
    if warnings:
        fields.extra["warnings"] = warnings
    return fields
