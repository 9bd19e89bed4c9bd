"""API function: the FastAPI app behind API Gateway (HTTP API, payload 2.0) through Mangum."""
