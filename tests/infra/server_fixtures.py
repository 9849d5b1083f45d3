"""Pytest fixtures for the loopback git, GitHub and GitLab servers."""
