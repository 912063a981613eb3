"""Amazon SES inbound mail without boto3.

Anymail's SES inbound view builds boto3 parameters when it is created, so without boto3
(a large dependency) every request fails. boto3 serves only two things there: fetching mail
that a receipt rule stored in S3, and confirming SNS subscriptions through the SNS API.
Tocsin needs neither: with the receipt rule's SNS action the message travels inside the
notification, and the subscription is confirmed by opening the URL it logs.
"""

import logging

from anymail.exceptions import AnymailConfigurationError
from anymail.utils import DEFAULT_DOWNLOAD_CHUNK_SIZE
from anymail.webhooks.amazon_ses import AmazonSESBaseWebhookView, AmazonSESInboundWebhookView

logger = logging.getLogger(__name__)


class AmazonSESInboundView(AmazonSESInboundWebhookView):
    def __init__(self, **kwargs):
        self.auto_confirm_enabled = False
        self.session_params, self.client_params = {}, {}
        self.kms_key_id = None
        self.chunk_size = DEFAULT_DOWNLOAD_CHUNK_SIZE
        # Skips the SES classes' __init__ (the boto3 part); basic auth is still set up.
        super(AmazonSESBaseWebhookView, self).__init__(**kwargs)

    def auto_confirm_sns_subscription(self, sns_message):
        # Reached only once basic auth (ANYMAIL_WEBHOOK_SECRET), when set, has passed.
        logger.warning(
            "Amazon SNS asks to confirm the subscription of topic %s to Tocsin's inbound "
            "mail webhook. To confirm it, open this URL once: %s",
            sns_message.get("TopicArn"), sns_message.get("SubscribeURL"),
        )

    def fetch_s3_chunks(self, bucket_name, object_key):
        raise AnymailConfigurationError(
            "Tocsin reads Amazon SES mail from the receipt rule's SNS action (encoding "
            f"Base64), not from S3 (bucket {bucket_name!r}): change the rule's action to SNS."
        )
