from rest_framework.permissions import DjangoModelPermissions


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
