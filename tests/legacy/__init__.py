"""The project's migrations exactly as they were at commit 756d098, before service routing
moved from incidents to destinations and each app began granting its own permissions.

tests/test_migration_upgrade.py builds a database with these (through MIGRATION_MODULES),
as an existing install has it, then migrates it with the real migrations. Never edit them:
they stand for databases that already exist.
"""
