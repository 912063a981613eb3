"""What the portal emails about, one receiver per happening (connected in apps.ready).

Each receiver builds one Email and records it with a key that names the happening, so a
repeated signal can never send a second mail.
"""

import uuid

from django.db import transaction
from django.urls import reverse

from incidents.links import incident_url
from notifications.models import NotificationSettings, NotificationType
from notifications.records import Email, record, when
from tocsin.actor import current_actor
from tocsin.links import portal_url


def by(actor) -> str:
    actor = actor or current_actor()
    return str(actor) if actor else "Tocsin (automatic)"


def incident_facts(incident) -> list[tuple[str, str]]:
    return [
        ("Incident", f"#{incident.number} {incident.title}"),
        ("Service", f"{incident.service.name} ({incident.service.team.name})"),
        ("Urgency", incident.urgency),
        ("Entity", incident.entity_id),
    ]


def on_incident_status(sender, incident, new_status, actor=None, **kwargs):
    """incident_status_recorded: Incidents notifications (resolved ones can be switched off)."""
    portal = NotificationSettings.load()  # once: the switch and the recipients
    if new_status == "resolved" and not portal.send_resolved:
        return
    drill = " [DRILL]" if incident.drill else ""
    email = Email(
        subject=f"[Tocsin]{drill} Incident #{incident.number} {new_status}: {incident.title}",
        headline=f"Incident #{incident.number} was {new_status}{drill}",
        text=incident.summary[:2000],
        facts=[("What", f"Incident {new_status}"), *incident_facts(incident),
               ("When", when()), ("By", by(actor))],
        url=incident_url(incident.pk),
    )
    record(NotificationType.INCIDENTS, f"incident.{new_status}",
           f"incident:{incident.pk}:{new_status}", email, incident=incident,
           recipients=portal.recipients_for(NotificationType.INCIDENTS))


def on_escalation(sender, incident, reason, key, actor=None, **kwargs):
    email = Email(
        subject=f"[Tocsin] Escalation on incident #{incident.number}: {reason}",
        headline=f"Incident #{incident.number} escalated",
        text=reason,
        facts=[("What", reason), *incident_facts(incident), ("Status", incident.status),
               ("When", when()), ("By", by(actor))],
        url=incident_url(incident.pk),
    )
    record(NotificationType.ESCALATIONS, "incident.escalated",
           f"escalation:{incident.pk}:{key}", email, incident=incident)


def platform_action(event: str, what: str, where: str, url: str, key: str, actor=None,
                    detail: str = "") -> None:
    """Record a Platform Actions email; the receivers below all come through here."""
    moment = when()
    email = Email(
        subject=f"[Tocsin] {what}", headline=what, text=detail,
        facts=[("What", what), ("Where", where), ("When", moment), ("By", by(actor))],
        url=url,
    )
    # Each announcement is its own happening (two revocations in one second are two):
    # the signal is sent once per change, so a fresh key never doubles an email.
    record(NotificationType.PLATFORM_ACTIONS, event, f"{key}:{uuid.uuid4().hex}", email)


def on_destination_failing(sender, destination, error, **kwargs):
    platform_action(
        "destination.failing", f"Destination {destination.name} is failing",
        f"{destination.get_kind_display()} destination, "
        f"{destination.consecutive_failures} failed deliveries in a row",
        portal_url(reverse("admin:destinations_destination_change", args=[destination.pk])),
        key=f"destination-failing:{destination.pk}", detail=f"Last error: {error}"[:2000],
    )


def account_notice(event: str, what: str, user, key: str, detail: str = "") -> None:
    moment = when()
    email = Email(
        subject=f"[Tocsin] {what}", headline=what, text=detail,
        facts=[("What", what), ("Account", f"{user.get_username()} <{user.email or 'no email'}>"),
               ("When", moment), ("By", by(None))],
        url=portal_url(reverse("admin:auth_user_change", args=[user.pk])),
    )
    record(NotificationType.ACCOUNT_NOTICES, event, f"{key}:{uuid.uuid4().hex}", email)


def on_user_saved(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    if created:
        account_notice("user.added", f"User {instance.get_username()} was added", instance,
                       key=f"user-added:{instance.pk}")
    elif getattr(instance, "_tocsin_password_changed", False):
        instance._tocsin_password_changed = False
        account_notice("user.password_changed",
                       f"Password of {instance.get_username()} was changed", instance,
                       key=f"password-changed:{instance.pk}")


def remember_password_change(sender, instance, raw=False, update_fields=None, **kwargs):
    """pre_save: compare with the stored hash, because Django has no password signal."""
    if raw or instance.pk is None or (update_fields and "password" not in update_fields):
        return  # a login saves only last_login
    stored = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    instance._tocsin_password_changed = stored is not None and stored != instance.password


def on_groups_changed(sender, instance, action, pk_set, reverse=False, **kwargs):
    """m2m_changed on User.groups: a role added or removed (from the user's side only;
    the admin and API change roles there)."""
    if reverse or action not in ("post_add", "post_remove", "post_clear"):
        return
    transaction.on_commit(lambda: role_changed(instance))


def role_changed(user) -> None:
    """After the commit: one notice per resulting set of roles. Changing a role in the
    admin removes one group and adds another (two m2m signals); both callbacks find the
    same roles and so the same key, and one email goes out."""
    roles = ", ".join(sorted(user.groups.values_list("name", flat=True))) or "none"
    moment = when()
    email = Email(
        subject=f"[Tocsin] Role of {user.get_username()} changed",
        headline=f"Role of {user.get_username()} changed", text=f"Roles now: {roles}.",
        facts=[("What", "Role changed"),
               ("Account", f"{user.get_username()} <{user.email or 'no email'}>"),
               ("Roles now", roles), ("When", moment), ("By", by(None))],
        url=portal_url(reverse("admin:auth_user_change", args=[user.pk])),
    )
    record(NotificationType.ACCOUNT_NOTICES, "user.role_changed",
           f"role-changed:{user.pk}:{roles}:{moment}", email)

INTEGRATION_CHANGES = {
    "created": "Integration {name} was created",
    "enabled": "Integration {name} was enabled",
    "disabled": "Integration {name} was disabled",
    "token_revoked": "A token of integration {name} was revoked",
}


def integration_where(integration) -> str:
    return f"{integration.get_kind_display()} integration on service {integration.service.name}"


def on_integration_changed(sender, integration, change, detail="", **kwargs):
    if change not in INTEGRATION_CHANGES:
        return
    platform_action(
        f"integration.{change}", INTEGRATION_CHANGES[change].format(name=integration.name),
        integration_where(integration),
        portal_url(reverse("admin:integrations_integration_change", args=[integration.pk])),
        key=f"integration-{change}:{integration.pk}", detail=detail,
    )


def on_integration_deleted(sender, instance, **kwargs):
    platform_action(
        "integration.deleted", f"Integration {instance.name} was deleted",
        f"{instance.get_kind_display()} integration (id {instance.pk})",
        portal_url(reverse("admin:integrations_integration_changelist")),
        key=f"integration-deleted:{instance.pk}",
    )


def on_integration_configuration_changed(sender, integration, what, actor=None, **kwargs):
    """A mapping or the alert rules changed: they decide what alerts become, so a change
    is worth telling the platform's owners about."""
    label = {"mapping": "payload mapping", "rules": "alert rules"}.get(what, what)
    platform_action(
        f"integration.{what}_changed", f"The {label} of integration {integration.name} changed",
        integration_where(integration),
        portal_url(reverse("admin:integrations_integration_change", args=[integration.pk])),
        key=f"integration-{what}:{integration.pk}", actor=actor,
    )
