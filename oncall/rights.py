"""Who may do what with on-call rows beyond the model permissions the roles grant: the
rules the REST API and the admin share, written once (docs/roles.md)."""


def keeps_everyones_contact_methods(user) -> bool:
    """Managers keep anyone's contact methods and rules, and see everyone's messages;
    everybody else only their own."""
    return user.has_perm("oncall.manage_everyones_contact_methods")


def places_anyone_on_call(user) -> bool:
    """Managers put anyone on call and edit any override; whoever may only add overrides
    (a Responder) adds swaps that put themselves on call."""
    return user.has_perm("oncall.change_override")


def may_remove_override(user, override) -> bool:
    """A swap is taken back by whoever made it; an override a Manager made (even one that
    puts this Responder on call) is the Manager's plan, not theirs to drop."""
    return places_anyone_on_call(user) or \
        override.user_id == override.created_by_id == user.pk
