"""Email: through Django's mail framework (tocsin.transport.mail), with an HTML
alternative for pages."""

from django.core.mail import EmailMultiAlternatives

from oncall.messages import Message
from oncall.models import PersonalNotification
from tocsin.transport import Result
from tocsin.transport.mail import send_mail


def build(notification: PersonalNotification, message: Message) -> EmailMultiAlternatives:
    headers = {"X-Tocsin-Notification": notification.dedup_key}
    if message.high_urgency:
        headers["X-Priority"] = "1"
    mail = EmailMultiAlternatives(subject=message.subject, body=message.text,
                                  to=[notification.address], headers=headers)
    if message.html:
        mail.attach_alternative(message.html, "text/html")
    return mail


def send(notification: PersonalNotification, message: Message) -> Result:
    return send_mail(build(notification, message))
