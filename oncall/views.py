"""Pages of the on-call app served outside the admin. STUB: the ack-links helper fills it."""

from django.http import HttpResponse


def acknowledge_link(request, token):
    return HttpResponse("Not built yet", status=501)
