"""Which destinations a service sends to is now stored by destinations: Destination.services,
read from a service as service.destinations, as before, through ServiceRoute rows.

The links used to be Service.destinations, a field of the incidents app, which made
incidents depend on destinations (docs/architecture.md). incidents/0001_initial was edited
to drop that field, so a fresh database never has its table; a database built before the
edit still has incidents_service_destinations, with the links. This migration copies them
into the new table and drops the old one, so both kinds of database end with the same
schema and the same links. The old table is found by name because no migration state
describes it any more.

There is no way back (migrating destinations below this raises IrreversibleError): the
old table is known to no migration state any more, and reversing would only drop the new
one, and every route with it. docs/deployment.md says how to roll back past it.
"""

import django.db.models.deletion
from django.db import migrations, models

OLD_TABLE = "incidents_service_destinations"


def move_links(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if OLD_TABLE not in connection.introspection.table_names(cursor):
            return
    new_table = apps.get_model("destinations", "Destination").services.through._meta.db_table
    quote = schema_editor.quote_name
    schema_editor.execute(
        f"INSERT INTO {quote(new_table)} (destination_id, service_id) "
        f"SELECT destination_id, service_id FROM {quote(OLD_TABLE)}"
    )
    schema_editor.execute(schema_editor.sql_delete_table % {"table": quote(OLD_TABLE)})


class Migration(migrations.Migration):

    dependencies = [
        ('destinations', '0005_outbox'),
        ('incidents', '0004_escalation_timeline_kind'),
    ]

    operations = [
        migrations.CreateModel(
            name='ServiceRoute',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('destination', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to='destinations.destination')),
                ('service', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to='incidents.service')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('destination', 'service'), name='one_route_per_destination_service')],
            },
        ),
        migrations.AddField(
            model_name='destination',
            name='services',
            field=models.ManyToManyField(blank=True, related_name='destinations', through='destinations.ServiceRoute', to='incidents.service'),
        ),
        # No way back: see the docstring.
        migrations.RunPython(move_links),
    ]
