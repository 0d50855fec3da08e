"""Pydantic models at the HTTP boundary, one module per resource group."""
