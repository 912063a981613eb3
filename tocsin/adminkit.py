"""Small pieces shared by the apps' admin pages: state badges and copyable text."""

from django.utils.html import format_html

CSS = ["tocsin/admin.css"]
JS = ["tocsin/admin.js"]


def badge(value: str, label: str):
    """A coloured pill; static/tocsin/admin.css has a colour per state value."""
    return format_html('<span class="tocsin-badge tocsin-badge--{}">{}</span>', value, label)


def copyable(element_id: str, text: str, *, block: bool = False):
    """Text with a Copy button next to it (static/tocsin/admin.js does the copying)."""
    if block:
        shown = format_html('<pre id="{}">{}</pre>', element_id, text)
    else:
        shown = format_html('<code id="{}">{}</code>', element_id, text)
    return format_html(
        '<div class="tocsin-copy">{}<button type="button" class="button" '
        'data-copy-target="{}">Copy</button></div>',
        shown, element_id,
    )
