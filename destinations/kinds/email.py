"""Email through Django's mail framework (SMTP or any anymail backend from settings); the
send and its error classification are tocsin.transport.mail's."""

from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from destinations.kinds.base import EMAILS, Field, Kind, Message, render_template
from tocsin.transport import Result
from tocsin.transport.mail import send_mail

DEFAULT_SUBJECT = "Alert {alert_name} changed status to {state}"


def placeholders(message: Message) -> dict:
    return {
        "alert_name": message.title, "state": message.event, "number": message.number or "",
        "unique_id": message.unique_id, "service": message.service, "team": message.team,
        "urgency": message.urgency, "severity": message.severity,
        "entity_id": message.entity_id, "url": message.url,
    }


class Email(Kind):
    FIELDS = [
        Field("recipients", EMAILS, help="Addresses, separated by commas."),
        Field("subject_template", required=False, default=DEFAULT_SUBJECT,
              help="Placeholders: {alert_name} {state} {number} {unique_id} {service} {team} "
                   "{urgency} {severity} {entity_id} {url}"),
    ]

    def build(self, message: Message) -> EmailMultiAlternatives:
        subject = render_template(message.config["subject_template"], placeholders(message))
        context = {"message": message}
        mail = EmailMultiAlternatives(
            subject=" ".join(subject.split())[:250],
            body=render_to_string("destinations/email.txt", context),
            to=message.config["recipients"],
            headers={"X-Tocsin-Delivery": message.delivery_id},
        )
        mail.attach_alternative(render_to_string("destinations/email.html", context),
                                "text/html")
        return mail

    def send(self, message: Message) -> Result:
        return send_mail(self.build(message))
