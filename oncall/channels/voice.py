"""Voice calls through Twilio: POST <api>/2010-04-01/Accounts/<sid>/Calls.json with To,
From and Twiml. A page's call reads the incident out and asks for a key: pressing 1 makes
Twilio post to the acknowledge-call URL (signed like an acknowledge link), which
acknowledges the incident as the person called."""

from xml.sax.saxutils import escape, quoteattr

from django.urls import reverse

from oncall.acklinks import make_token
from oncall.channels import twilio
from oncall.messages import Message
from oncall.models import PersonalNotification
from tocsin.links import portal_url
from tocsin.transport import Result

# Said when the call ends without a key pressed (the Gather timed out).
NO_KEY = "No key was pressed. The incident is not acknowledged. Goodbye."


def twiml(notification: PersonalNotification, message: Message) -> str:
    say = f"<Say>{escape(message.text)}</Say>"
    if notification.incident_id is None:
        return f"<Response>{say}</Response>"
    action = portal_url(reverse("acknowledge-call",
                                args=[make_token(notification.user_id,
                                                 notification.incident_id)]))
    return (f'<Response><Gather numDigits="1" action={quoteattr(action)} method="POST">'
            f"{say}</Gather><Say>{escape(NO_KEY)}</Say></Response>")


def build(notification: PersonalNotification, message: Message) -> dict:
    return {"To": notification.address, "Twiml": twiml(notification, message)}


def send(notification: PersonalNotification, message: Message) -> Result:
    return twilio.post("Calls.json", build(notification, message))
