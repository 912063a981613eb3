"""django-anymail's webhook URLs (/anymail/<esp>/inbound/ and /tracking/), with Amazon SES
inbound served by a view that works without boto3 (see integrations/ses.py)."""

from anymail import urls as anymail_urls
from django.urls import path

from integrations.ses import AmazonSESInboundView

app_name = "anymail"
urlpatterns = [
    path("amazon_ses/inbound/", AmazonSESInboundView.as_view(),
         name="amazon_ses_inbound_webhook"),
    *anymail_urls.urlpatterns,
]
