"""Email through Django's mail framework (SMTP or any anymail backend from settings).

Errors are classified like HTTP ones: a refused recipient or a 5xx SMTP reply is
permanent, a connection problem or a 4xx reply is retried.
"""

import smtplib

from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
)
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from destinations.http import DeliveryError
from destinations.kinds.base import EMAILS, Field, Message, Result, render_template

DEFAULT_SUBJECT = "Alert {alert_name} changed status to {state}"

FIELDS = [
    Field("recipients", EMAILS, help="Addresses, separated by commas."),
    Field("subject_template", required=False, default=DEFAULT_SUBJECT,
          help="Placeholders: {alert_name} {state} {number} {unique_id} {service} {team} "
               "{urgency} {severity} {entity_id} {url}"),
]


def placeholders(message: Message) -> dict:
    return {
        "alert_name": message.title, "state": message.event, "number": message.number or "",
        "unique_id": message.unique_id, "service": message.service, "team": message.team,
        "urgency": message.urgency, "severity": message.severity,
        "entity_id": message.entity_id, "url": message.url,
    }


def build(message: Message) -> EmailMultiAlternatives:
    subject = render_template(message.config["subject_template"], placeholders(message))
    context = {"message": message}
    mail = EmailMultiAlternatives(
        subject=" ".join(subject.split())[:250],
        body=render_to_string("destinations/email.txt", context),
        to=message.config["recipients"],
        headers={"X-Tocsin-Delivery": message.delivery_id},
    )
    mail.attach_alternative(render_to_string("destinations/email.html", context), "text/html")
    return mail


def send_mail(mail: EmailMultiAlternatives) -> None:
    """Send one message through Django's mail settings, raising DeliveryError classified
    like an HTTP failure. The portal's own notifications send through this too."""
    try:
        mail.send()
    except smtplib.SMTPRecipientsRefused as exc:
        # Permanent only if every refusal is a 5xx; a 4xx (greylisting, full mailbox) is
        # transient (RFC 5321 4.2.1) and is retried.
        permanent = all(code >= 500 for code, _ in exc.recipients.values())
        raise DeliveryError(f"Recipients refused: {exc.recipients}",
                            permanent=permanent) from exc
    except smtplib.SMTPResponseException as exc:
        detail = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        raise DeliveryError(f"SMTP {exc.smtp_code}: {detail}", permanent=exc.smtp_code >= 500,
                            status=exc.smtp_code) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"Mail server unreachable: {exc}", permanent=False) from exc
    # An anymail backend (EMAIL_BACKEND) reports through its own exceptions.
    except (AnymailRecipientsRefused, AnymailInvalidAddress) as exc:
        raise DeliveryError(f"Recipients refused: {exc}", permanent=True) from exc
    except AnymailAPIError as exc:
        status = getattr(exc, "status_code", None)
        # A 4xx other than 429 is the request's fault; throttling, 5xx and network trouble
        # pass.
        permanent = status is not None and 400 <= status < 500 and status != 429
        raise DeliveryError(f"Mail provider: {describe(exc)}"[:2000], permanent=permanent,
                            status=status) from exc
    except AnymailError as exc:
        raise DeliveryError(f"Mail provider: {describe(exc)}"[:2000], permanent=True) from exc


def describe(exc: Exception) -> str:
    # anymail's messages describe the provider's response, and fail without one.
    try:
        return str(exc)
    except Exception:
        return str(exc.args[0]) if exc.args else exc.__class__.__name__


def send(message: Message) -> Result:
    send_mail(build(message))
    return Result(250, "")
