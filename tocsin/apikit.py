"""Small pieces shared by the apps' REST APIs."""

from django.db import models
from django.db.models import ProtectedError, RestrictedError
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from tocsin import strictjson


class StrictJSONField(serializers.JSONField):
    """A JSON field read as strictly as JSON request bodies are (tocsin.strictjson), also
    when its value comes as text in a form or multipart post (the browsable API sends those):
    a lone surrogate or NUL would otherwise reach the database (PostgreSQL refuses them:
    a 500), and deep nesting would exhaust the recursion limit."""

    def to_internal_value(self, data):
        try:
            if self.binary or getattr(data, "is_json_string", False):
                data = strictjson.loads(data)
            else:
                found = strictjson.document_problem(data)
                if found:
                    raise strictjson.JSONProblem(*found)
        except strictjson.JSONProblem as exc:
            raise ValidationError(str(exc)) from None
        except ValueError:
            self.fail("invalid")
        return super().to_internal_value(data)


class ModelSerializer(serializers.ModelSerializer):
    """The apps' model serializers: model JSON fields become StrictJSONFields."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.JSONField: StrictJSONField,
    }


class NoBody(serializers.Serializer):
    """For actions that take no request body (acknowledge, resend, test…). A named class,
    because DRF's bare Serializer gives the OpenAPI schema a component with an empty name."""


class StableOrderingFilter(OrderingFilter):
    """Every list in one fixed order, so limit/offset pages never skip or repeat a row.

    DRF's OrderingFilter with three changes: a view accepts ``?ordering=`` only on the
    fields it lists in ``ordering_fields`` (never "every serializer field"); an unknown
    field is a 400 naming the accepted ones instead of being silently dropped; and the id
    always ends the order, because rows that tie on the chosen keys (equal created_at, a
    name used twice) come back in any order the database likes, page after page. The
    default order is the view's ``ordering``; without one, the queryset's or the model's
    (which an aggregate annotation silently drops, hence the explicit ``ordering``).
    """

    def get_default_valid_fields(self, queryset, view, context=None):
        return []

    def remove_invalid_fields(self, queryset, fields, view, request):
        valid = [name for name, _ in self.get_valid_fields(queryset, view, {"request": request})]
        unknown = [term for term in fields if term.removeprefix("-") not in valid]
        if unknown:
            allowed = ", ".join(valid) if valid else "nothing: this list has a fixed order"
            raise ValidationError({self.ordering_param: [
                f"Unknown ordering field(s): {', '.join(unknown)}. Allowed: {allowed}."
            ]})
        return list(fields)

    def get_ordering(self, request, queryset, view):
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if not ordering:
            ordering = list(queryset.query.order_by or queryset.model._meta.ordering or [])
        return with_tiebreaker(ordering)

    def get_schema_operation_parameters(self, view):
        fields = list(getattr(view, "ordering_fields", None) or [])
        if not fields:
            return []
        [parameter] = super().get_schema_operation_parameters(view)
        parameter["description"] = (
            f"Order by {', '.join(fields)} (comma-separated; '-' in front for descending). "
            f"Default: {', '.join(with_tiebreaker(list(getattr(view, 'ordering', None) or [])))}.")
        return [parameter]

    def to_html(self, request, queryset, view):
        # The browsable API draws the ordering form while rendering the 400 for a bad
        # ?ordering=; asking again there must not turn that 400 into a 500.
        try:
            return super().to_html(request, queryset, view)
        except ValidationError:
            return ""


def with_tiebreaker(ordering: list) -> list:
    """``ordering`` ended by the id (in the direction of its first key) unless it has it.
    Terms are field names ("-number") or, from a queryset, OrderBy expressions."""
    if any(str(term).removeprefix("-") in ("id", "pk") for term in ordering):
        return ordering
    first = ordering[0] if ordering else ""
    descending = first.startswith("-") if isinstance(first, str) else \
        bool(getattr(first, "descending", False))
    return [*ordering, "-id" if descending else "id"]


def exception_handler(exc, context):
    """DRF's handler, plus a 409 naming what still refers to an object whose DELETE the
    database refused (a team with services, a service with integrations or incidents):
    the request was well formed, the state of the data is what stands in the way."""
    if isinstance(exc, ProtectedError | RestrictedError):
        blocking = exc.protected_objects if isinstance(exc, ProtectedError) \
            else exc.restricted_objects
        counts: dict[str, int] = {}
        for obj in blocking:
            name = str(obj._meta.verbose_name_plural)
            counts[name] = counts.get(name, 0) + 1
        listed = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
        return Response(
            {"detail": f"Cannot delete this object: {listed} still refer to it. "
                       "Delete them or move them elsewhere first."},
            status=status.HTTP_409_CONFLICT)
    return drf_exception_handler(exc, context)
