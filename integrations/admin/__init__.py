"""The integrations app's admin pages, one module per purpose; importing them registers them.

- ``integrations``: the integration form, its address and the enable/disable actions.
- ``tokens``: incoming-webhook bearer tokens (created on their own page, revoked).
- ``rules``: alert rules edited with their integration, and the preview page.
- ``events``: what the integrations received and made (inbound events, alerts).
"""

from integrations.admin import events, integrations, rules, tokens

__all__ = ["events", "integrations", "rules", "tokens"]
