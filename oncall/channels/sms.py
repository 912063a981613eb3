"""SMS through Twilio: POST <api>/2010-04-01/Accounts/<sid>/Messages.json with To, From
and Body (oncall/messages.py keeps the body to one segment where it can)."""

from oncall.channels import twilio
from oncall.messages import Message, gsm7
from oncall.models import PersonalNotification
from tocsin.transport import Result


def build(notification: PersonalNotification, message: Message) -> dict:
    # A page's text is GSM-7 already; a notice written elsewhere is made so here.
    return {"To": notification.address, "Body": gsm7(message.text)}


def send(notification: PersonalNotification, message: Message) -> Result:
    return twilio.post("Messages.json", build(notification, message))
