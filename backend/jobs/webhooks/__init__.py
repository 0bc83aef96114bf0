"""Webhook pieces the durable outbox calls: target checks, signing, one delivery attempt and
the retry schedule. No database code here; `webhook_deliveries` and its dispatcher live with
the job engine.

- `targets`: `check_webhook_url` at submit, `resolve_public` at every delivery,
  `WebhookFields` for request models, `effective_webhook_events`.
- `signing`: Standard Webhooks secrets (`whsec_...`) and the three signature headers.
- `sender`: `WebhookSender.send(...)` makes one attempt and returns an `AttemptResult`.
- `schedule`: `retry_delay_seconds`, `should_retry`.
"""
