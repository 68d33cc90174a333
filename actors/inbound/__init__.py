"""Inbound actors: what the receiving side gets from a study (QC, triage, priors, AI, SR, ORU).

Every actor here is synchronous, pure CPU work over a :class:`~dxai.actors.inbound.study.StudyView`
(run by the daemon in its thread pool) and talks to no network: the daemon's gateways fetch,
search, store and send.  Results are :class:`~dxai.actors.inbound.findings.TaskReport` objects.
"""
