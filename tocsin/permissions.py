from rest_framework.permissions import BasePermission, DjangoModelPermissions


class GroupModelPermissions(DjangoModelPermissions):
    """Model permissions as the groups grant them, reads included.

    DRF's DjangoModelPermissions lets any authenticated user read; here reading needs the
    view permission too. A viewset's extra actions name their own permissions in
    ``action_permissions`` (for example acknowledging an incident is not "changing" it).
    """

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view):
        action_permissions = getattr(view, "action_permissions", {})
        action = getattr(view, "action", None)
        if action in action_permissions:
            user = request.user
            allowed = user.is_authenticated and user.has_perms(action_permissions[action])
            return bool(allowed)
        return super().has_permission(request, view)


class SchemaReaders(BasePermission):
    """The OpenAPI schema lists every endpoint and field: for signed-in staff and role
    members (token users need only a group), not for anonymous visitors."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and (
            user.is_staff or user.is_superuser or user.groups.exists()
        ))


def sees_integration_endpoints(user) -> bool:
    """Whether a user may see integration keys, webhook and ping URLs and email addresses.

    Anyone who has them can forge alerts, so they go to those who may change the
    integration anyway (Managers, Administrators, superusers), not to Responders
    (docs/roles.md).
    """
    return bool(user and user.is_authenticated and user.has_perm("integrations.change_integration"))
