"""Events function: external events from SQS and EventBridge into ``ordinaut.ingest``."""
