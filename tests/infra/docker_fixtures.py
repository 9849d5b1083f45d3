"""Pytest fixtures for the Docker engine, parent image and registry."""
