import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "On first start, create an Administrator login and print it."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An administrator already exists; log in with that account.")
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=password)
        # A superuser may do everything anyway; the group only shows the role, so a
        # database whose groups were removed (or flushed) must not stop the first start.
        administrators = Group.objects.filter(name="Administrator").first()
        if administrators is not None:
            user.groups.add(administrators)
        self.stdout.write(
            self.style.SUCCESS("First administrator created. Log in at /admin/ with\n")
            + f"  username: {username}\n  password: {password}\n"
            + "Change the password after logging in; it is not shown again."
        )
