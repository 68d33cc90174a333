"""Intake: Kafka consumer group (production) and embedded listeners."""
