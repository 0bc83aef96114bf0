"""Durable jobs: every generation runs as a DBOS workflow whose state lives in the job store.

`records` holds the service's tables (jobs, their events, Idempotency-Keys, webhook
deliveries), `engine` the DBOS workflows and queues, `kinds` what each endpoint's job runs,
`submission` how a request becomes a job and how its answer is made, `signals` the wakeups
that carry a job's changes to waiting requests and event streams, `outbox`
and `webhooks` the signed deliveries of a job's events.
"""
