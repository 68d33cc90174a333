"""The ground floor of dxai: what every room may import, and which imports no room.

- :mod:`dxai.configs.schema`: the one typed configuration (pydantic v2) beside its YAML files;
- :mod:`dxai.configs.errors`: the one error hierarchy (retriable or not, PHI-free messages);
- :mod:`dxai.configs.lifecycle`: the async component lifecycle (idempotent start/stop);
- :mod:`dxai.configs.atomic`: atomic, durable file writes;
- :mod:`dxai.configs.phi`: the PHI vocabulary (folding, transliteration, typed spellings,
  months, date spellings) shared by the header and pixel de-identification;
- :mod:`dxai.configs.phi_patterns`: patterns of PHI in free text that no header value gives
  (phone numbers, addresses, dates, ages, labelled IDs, names after titles).

Rooms above: ``engines`` <- ``batching`` <- ``actors`` <- ``daemon``, with ``observability``
beside them (see ``docs/architecture.md``).
"""
