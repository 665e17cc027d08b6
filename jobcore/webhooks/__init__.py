"""Signed webhooks: a project registers endpoints and receives its jobs' events, signed the Standard Webhooks way
(``docs/webhooks.md``).

- :mod:`~jobcore.webhooks.outbox`: which events become webhooks and their messages, written as deliveries in the
  transaction of the event they report (so none is lost and none is sent for an event that was rolled back);
- :mod:`~jobcore.webhooks.sender`: the loop that sends due deliveries, retries them with back-off and keeps the
  delivery log (each API process and each worker runs one);
- :mod:`~jobcore.webhooks.endpoints`: endpoints and the delivery log as the API manages them;
- :mod:`~jobcore.webhooks.signing`: secrets and signatures; :mod:`~jobcore.webhooks.urls`: where webhooks may go.
"""
