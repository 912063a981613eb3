"""How a message reaches a person, one module per kind of contact method, all of one shape:
``send(notification, message) -> Result`` builds the request (email, Twilio's REST API, an
ntfy server), sends it through the one shared helper (tocsin.transport.mail or .http) and
maps the answer to a Result, raising TransportError for a failure, as destination kinds
do (destinations/kinds/base.py)."""

from oncall.channels import email, ntfy, sms, voice
from oncall.messages import Message
from oncall.models import ContactMethod, PersonalNotification
from tocsin.transport import Result

Kind = ContactMethod.Kind

CHANNELS = {Kind.EMAIL: email, Kind.SMS: sms, Kind.VOICE: voice, Kind.NTFY: ntfy}


def send(notification: PersonalNotification, message: Message) -> Result:
    return CHANNELS[notification.kind].send(notification, message)
