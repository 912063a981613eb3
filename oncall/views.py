"""Pages of the on-call app served outside the admin. STUB: the ack-links helper fills it."""

from django.http import HttpResponse


def acknowledge_link(request, token):
    return HttpResponse("Not built yet", status=501)


def acknowledge_call(request, token):
    """Twilio asks this when the person called presses a key (TwiML <Gather action>)."""
    return HttpResponse("Not built yet", status=501)
