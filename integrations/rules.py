"""Alert rules: per integration, evaluated on every alert after mapping.

Every enabled rule is tested against the alert as parsing and mapping left it (no rule sees
another rule's changes). Of the rules that match, single-valued actions (suppress, set_*,
route_escalation_policy) are taken from the most recently created rule that has them;
additive ones (add_note, add_tags) accumulate in position order. What each rule did is
returned as the audit kept in Alert.extra["rules"]. See docs/mapping-and-rules.md.
"""

import functools
import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from incidents.models import EscalationPolicy, Incident, Priority, Tag
from integrations import mapping, patterns
from integrations.alert_fields import AlertFields
from integrations.lookups import find
from integrations.mapping import MISSING, Op
from integrations.models import AlertRule, AlertType

Action = AlertRule.Action
Field = AlertRule.Field

TEXT_FIELDS = {Field.ALERT_TYPE, Field.URGENCY, Field.MESSAGE, Field.SUMMARY, Field.ENTITY_ID}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
FIELD_OPS = {
    Field.TIME_OF_DAY: ("between", "not_between"),
    Field.DAY_OF_WEEK: ("in", "not_in"),
    Field.SECONDS_SINCE_LAST_INCIDENT: (Op.GT, Op.LT),
    Field.PAYLOAD_KEYS: (Op.CONTAINS, Op.EQUALS, Op.MATCHES),
}
# action type → the AlertFields attribute it sets; the newest matching rule wins each.
SINGLE_VALUED = {
    Action.SUPPRESS: "suppressed",
    Action.SET_ALERT_TYPE: "alert_type",
    Action.SET_URGENCY: "urgency",
    Action.SET_MESSAGE: "message",
    Action.SET_SUMMARY: "summary",
    Action.SET_ENTITY_ID: "entity_id",
    Action.SET_PRIORITY: "priority",
    Action.ROUTE_ESCALATION_POLICY: "escalation_policy",
}
LIMITS = {"message": 500, "entity_id": 255}


# --- Validation -----------------------------------------------------------------------

def _timezone_error(condition) -> str | None:
    name = condition.get("timezone", "UTC")
    try:
        if not isinstance(name, str) or not name:
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown timezone {name!r} (an IANA name such as Europe/Berlin)"
    return None


def _field_condition_errors(condition: dict, at: str) -> list[str]:
    name, op, value = condition.get("field"), condition.get("op"), condition.get("value")
    if not isinstance(name, str):  # a list or object is no field name (nor hashable)
        return [f"{at}.field: must be a field name, got {name!r}"]
    allowed_keys = {"field", "op", "value"}
    if name in (Field.TIME_OF_DAY, Field.DAY_OF_WEEK):
        allowed_keys.add("timezone")
    errors = []
    unknown = sorted(set(condition) - allowed_keys)
    if unknown:
        errors.append(f"{at}: unknown key(s) {', '.join(unknown)}")
    if name in TEXT_FIELDS:
        problem = mapping.op_value_error(op, value, "value" in condition)
        return errors + ([f"{at}.{problem[0]}: {problem[1]}"] if problem else [])
    if name not in FIELD_OPS:
        known = ", ".join(sorted(TEXT_FIELDS | set(FIELD_OPS)))
        return errors + [f"{at}.field: unknown field {name!r} (one of {known})"]
    if op not in FIELD_OPS[name]:
        return errors + [f"{at}.op: unknown op {op!r} for {name} "
                         f"(one of {', '.join(FIELD_OPS[name])})"]
    if name == Field.TIME_OF_DAY:
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, str) and CLOCK.match(v) for v in value)):
            errors.append(f'{at}.value: must be ["HH:MM", "HH:MM"] (24-hour clock)')
        elif value[0] == value[1]:
            errors.append(f"{at}.value: start and end must differ")
    elif name == Field.DAY_OF_WEEK:
        if not isinstance(value, list) or not value or any(
            not isinstance(v, str) or v.lower() not in DAYS for v in value
        ):
            errors.append(f"{at}.value: must be a list of days ({', '.join(DAYS)})")
    elif name == Field.SECONDS_SINCE_LAST_INCIDENT:
        number = mapping.as_number(value)
        if number is None or number < 0:
            errors.append(f"{at}.value: must be a number of seconds")
    else:
        problem = mapping.op_value_error(op, value, "value" in condition)
        if problem:
            errors.append(f"{at}.{problem[0]}: {problem[1]}")
    if "timezone" in allowed_keys:
        problem = _timezone_error(condition)
        if problem:
            errors.append(f"{at}.timezone: {problem}")
    return errors


def validate_conditions(conditions) -> list[str]:
    if not isinstance(conditions, list):
        return ["must be a list of conditions"]
    errors = []
    for index, condition in enumerate(conditions):
        at = f"conditions[{index}]"
        if isinstance(condition, dict) and "field" in condition:
            if "path" in condition:
                errors.append(f"{at}: has both field and path; use one")
            else:
                errors += _field_condition_errors(condition, at)
        else:
            errors += mapping.condition_errors(condition, at)
    return errors


def _reference_error(model, value, *, names: bool) -> str | None:
    """Ids (and, where allowed, names) must exist when the rule is saved."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        return "must be an id" + (" or a name" if names else "")
    if find(model, value, names=names) is None:
        return f"no {model._meta.verbose_name} {value!r}"
    return None


def _action_errors(action, at: str) -> list[str]:
    if not isinstance(action, dict) or "type" not in action:
        return [f'{at}: must be an object such as {{"type": "suppress"}}']
    kind, value = action["type"], action.get("value")
    if not isinstance(kind, str) or kind not in Action.values:
        return [f"{at}.type: unknown action {kind!r} (one of {', '.join(Action.values)})"]
    unknown = sorted(set(action) - ({"type"} if kind == Action.SUPPRESS else {"type", "value"}))
    if unknown:
        return [f"{at}: unknown key(s) {', '.join(unknown)}"]
    problem = None
    if kind == Action.SUPPRESS:
        return []
    if "value" not in action:
        problem = "is required"
    elif kind == Action.SET_ALERT_TYPE and value not in AlertType.values:
        problem = f"{value!r} is not an alert type ({', '.join(AlertType.values)})"
    elif kind == Action.SET_URGENCY and value not in Incident.Urgency.values:
        problem = f"{value!r} is not an urgency ({', '.join(Incident.Urgency.values)})"
    elif kind in (Action.SET_MESSAGE, Action.SET_ENTITY_ID, Action.ADD_NOTE) and (
        not isinstance(value, str) or not value.strip()
    ):
        problem = "must be a non-empty string"
    elif kind == Action.SET_SUMMARY and not isinstance(value, str):
        problem = "must be a string"
    elif kind == Action.ADD_TAGS:
        if not isinstance(value, list) or not value:
            problem = "must be a list of tag ids or names"
        else:
            problems = [_reference_error(Tag, item, names=True) for item in value]
            problem = "; ".join(p for p in problems if p) or None
    elif kind == Action.SET_PRIORITY:
        problem = _reference_error(Priority, value, names=True)
    elif kind == Action.ROUTE_ESCALATION_POLICY:
        problem = _reference_error(EscalationPolicy, value, names=False)
    return [f"{at}.value: {problem}"] if problem else []


def validate_actions(actions) -> list[str]:
    if not isinstance(actions, list) or not actions:
        return ["must be a non-empty list of actions"]
    errors, seen = [], set()
    for index, action in enumerate(actions):
        at = f"actions[{index}]"
        errors += _action_errors(action, at)
        kind = action.get("type") if isinstance(action, dict) else None
        if isinstance(kind, str) and kind in SINGLE_VALUED:
            if kind in seen:
                errors.append(f"{at}.type: {kind} appears twice in one rule")
            seen.add(kind)
    return errors


# --- Evaluation -----------------------------------------------------------------------

@dataclass
class RuleSpec:
    """A rule as evaluation needs it: saved (from the model) or unsaved (a preview)."""

    id: int | None
    name: str
    position: int
    enabled: bool
    conditions: list
    actions: list
    created: tuple  # sorts older first: (created_at timestamp, id) or (list index,)

    @classmethod
    def of(cls, rule: AlertRule) -> "RuleSpec":
        return cls(rule.pk, rule.name, rule.position, rule.enabled, rule.conditions,
                   rule.actions, (rule.created_at.timestamp(), rule.pk or 0))


def saved_rules(integration) -> list[RuleSpec]:
    # Plain rows, not model instances: this runs for every event, and building instances
    # cost more than the query itself.
    rows = AlertRule.objects.filter(integration=integration, enabled=True).values_list(
        "pk", "name", "position", "conditions", "actions", "created_at"
    )
    return [RuleSpec(pk, name, position, True, conditions, actions,
                     (created_at.timestamp(), pk))
            for pk, name, position, conditions, actions, created_at in rows]


def unsaved_rules(items) -> tuple[list[RuleSpec], list[str]]:
    """Rules given as JSON (`[{"name", "conditions", "actions", "enabled", "position"}]`),
    for a preview; later entries count as more recently created."""
    if not isinstance(items, list):
        return [], ["rules: must be a list of rules"]
    specs, errors = [], []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(f"rules[{index}]: must be an object")
            continue
        found = [f"rules[{index}].{e}" for e in validate_conditions(item.get("conditions", []))]
        found += [f"rules[{index}].{e}" for e in validate_actions(item.get("actions"))]
        if found:
            errors += found
            continue
        specs.append(RuleSpec(
            item.get("id"), str(item.get("name") or f"rule {index + 1}"),
            _position(item.get("position"), index), item.get("enabled", True) is not False,
            item.get("conditions", []), item["actions"], (index,),
        ))
    return specs, errors


def _position(raw, default: int) -> int:
    number = mapping.as_number(raw)
    return int(number) if number is not None else default


class Context:
    """What conditions look at. Costly facts (the last incident, the payload's keys) are
    found at most once per alert, and only if a condition asks."""

    def __init__(self, fields: AlertFields, *, service_id, now: datetime):
        self.fields, self.service_id, self.now = fields, service_id, now
        self._last_incident = MISSING
        self._keys = None

    def text(self, name: str) -> str:
        if name == Field.URGENCY:
            return self.fields.effective_urgency()
        return getattr(self.fields, name)

    def seconds_since_last_incident(self) -> float | None:
        if self._last_incident is MISSING:
            created = None
            if self.fields.entity_id and self.service_id is not None:
                created = (
                    Incident.objects.filter(
                        service_id=self.service_id, entity_id=self.fields.entity_id
                    ).order_by("-created_at").values_list("created_at", flat=True).first()
                )
            self._last_incident = created
        if self._last_incident is None:
            return None
        return max(0.0, (self.now - self._last_incident).total_seconds())

    def payload_keys(self) -> list[str]:
        if self._keys is None:
            self._keys = []
            stack = [self.fields.payload]
            while stack:
                node = stack.pop()
                if isinstance(node, dict):
                    self._keys.extend(node)
                    stack.extend(node.values())
                elif isinstance(node, list):
                    stack.extend(node)
        return self._keys


def compile_condition(condition: dict):
    """A function of a Context telling whether the condition holds. Compiled (regexes,
    time zones, paths) once per process for each distinct condition."""
    return _compile_condition(mapping.freeze(condition), mapping.Unhashed(condition))


@functools.lru_cache(maxsize=4096)
def _compile_condition(key, wrapped: mapping.Unhashed):
    condition = wrapped.value
    if "field" not in condition:
        compiled = mapping.Condition.compile(condition)
        return lambda ctx: compiled.test(ctx.fields.payload)
    name, op, value = condition["field"], condition["op"], condition.get("value")
    if name in TEXT_FIELDS:
        compiled = mapping.Condition.compile({"path": "x", **condition})
        return lambda ctx: mapping.holds(op, ctx.text(name), compiled.value, compiled.pattern)
    if name == Field.TIME_OF_DAY:
        zone = ZoneInfo(condition.get("timezone") or "UTC")
        start, end = (time(*map(int, v.split(":"))) for v in value)

        def in_window(ctx):
            now = ctx.now.astimezone(zone).time().replace(second=0, microsecond=0)
            inside = start <= now < end if start < end else (now >= start or now < end)
            return inside if op == "between" else not inside
        return in_window
    if name == Field.DAY_OF_WEEK:
        zone = ZoneInfo(condition.get("timezone") or "UTC")
        days = {DAYS.index(v.lower()) for v in value}
        inside_days = op == "in"
        return lambda ctx: (ctx.now.astimezone(zone).weekday() in days) == inside_days
    if name == Field.SECONDS_SINCE_LAST_INCIDENT:
        limit = float(mapping.as_number(value))

        def since(ctx):
            seconds = ctx.seconds_since_last_incident()
            if seconds is None:  # never had one: as if infinitely long ago
                return op == Op.GT
            return seconds > limit if op == Op.GT else seconds < limit
        return since
    pattern = patterns.compile_regex(value) if op == Op.MATCHES else None
    text = mapping.as_text(value)
    tests = {
        Op.CONTAINS: lambda key: text in key,
        Op.EQUALS: lambda key: key == text,
        Op.MATCHES: lambda key: patterns.search(pattern, key),
    }[op]
    return lambda ctx: any(tests(str(key)) for key in ctx.payload_keys())


def compiled_conditions(spec: RuleSpec) -> list:
    """The rule's conditions ready to test, all of them, so a rule that cannot run fails
    every event the same way and not only those that get past its first conditions."""
    tests = []
    for index, condition in enumerate(spec.conditions):
        try:
            tests.append(compile_condition(condition))
        except patterns.RegexError as exc:
            rule = f"rule {spec.name!r}" + (f" (id {spec.id})" if spec.id else "")
            raise mapping.ConfigurationError(
                {"rules": f"{rule} conditions[{index}].value: {exc}"}
            ) from None
    return tests


def matching(specs: list[RuleSpec], ctx: Context) -> list[RuleSpec]:
    found = []
    for spec in sorted(specs, key=lambda s: (s.position, s.created)):
        if not spec.enabled:
            continue
        if all(test(ctx) for test in compiled_conditions(spec)):
            found.append(spec)
    return found


def apply_rules(fields: AlertFields, specs: list[RuleSpec], *, service_id, now) -> list[dict]:
    """Change `fields` as the matching rules say; returns the audit, one entry per matching
    rule in position order: {"rule", "name", "actions": [what took effect],
    "overridden": [what a newer rule replaced, with "by"]}."""
    matched = matching(specs, Context(fields, service_id=service_id, now=now))
    winners = {}
    for spec in sorted(matched, key=lambda s: s.created):
        for action in spec.actions:
            if action["type"] in SINGLE_VALUED:
                winners[action["type"]] = (spec, action)
    audit = []
    for spec in matched:
        entry = {"rule": spec.id, "name": spec.name, "actions": [], "overridden": []}
        for action in spec.actions:
            kind = action["type"]
            winner = winners.get(kind, (spec, action))[0]
            if winner is spec:
                entry["actions"].append(action)
                _take(fields, action)
            else:
                entry["overridden"].append({**action, "by": winner.id, "by_name": winner.name})
        if not entry["overridden"]:
            del entry["overridden"]
        audit.append(entry)
    return audit


def _take(fields: AlertFields, action: dict) -> None:
    kind, value = action["type"], action.get("value")
    if kind == Action.ADD_TAGS:
        fields.tags = [*fields.tags, *value]
    elif kind == Action.SUPPRESS:
        fields.suppressed = True
    elif kind in SINGLE_VALUED:
        attribute = SINGLE_VALUED[kind]
        limit = LIMITS.get(attribute)
        setattr(fields, attribute, value[:limit] if limit else value)
    # add_note: the audit carries the text; grouping writes it on the incident.
