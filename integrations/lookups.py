"""Finding the objects an alert names (a priority, an SLA, tags) by id as a payload sends
them or by name as a mapping or a rule may give them. Unknown ones are ignored (None, or
left out), never an error: a payload's ids are hints, checked when the alert is grouped."""

from django.db.models import Value
from django.db.models.functions import Lower

from incidents.models import Tag
from tocsin.ids import as_id

# Tag names are looked up this many at a time: one IN list each, well inside SQLite's
# limit on bound variables (999 before SQLite 3.32).
TAG_CHUNK = 500


def find(model, value, *, names: bool = True):
    """The object with this id (an integer or digits) or, where allowed, this name
    (case-insensitive); None if there is none."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    pk = as_id(text)
    if pk is not None:
        found = model.objects.filter(pk=pk).first()
        if found is not None or not names:
            return found
    return model.objects.filter(name__iexact=text).first() if names and text else None


def find_by_id(model, raw):
    """Look up an id sent in a payload; unknown, malformed or out-of-range ids are ignored
    (None)."""
    pk = as_id(raw)
    return None if pk is None else model.objects.filter(pk=pk).first()


def find_tags(raw) -> list:
    """Tags by id (as sent in a payload) or by name (as a rule may add them, any case);
    unknown ones are ignored. Ids first, then names (a number that is no tag's id may still
    be a tag's name). Names are compared in IN lists of TAG_CHUNK: one OR term per name made
    an expression deeper than SQLite allows at about 1,000 names."""
    texts = [str(item).strip() for item in raw if item is not None and not isinstance(item, bool)]
    texts = list(dict.fromkeys(text for text in texts if text))
    ids = [pk for pk in map(as_id, texts) if pk is not None]
    by_id = {}
    for start in range(0, len(ids), TAG_CHUNK):
        chunk = ids[start:start + TAG_CHUNK]
        by_id.update((tag.pk, tag) for tag in Tag.objects.filter(pk__in=chunk))
    names = [text for text in texts if as_id(text) not in by_id]
    for start in range(0, len(names), TAG_CHUNK):
        # Both sides folded by the database, so its idea of case applies to both.
        folded = [Lower(Value(name)) for name in names[start:start + TAG_CHUNK]]
        matching = Tag.objects.annotate(folded_name=Lower("name")).filter(folded_name__in=folded)
        by_id.update((tag.pk, tag) for tag in matching)
    return list(by_id.values())
