"""Ingestion: synthetic and Lending Club event sources, Kafka producer/consumer, pacing and anomalies."""
