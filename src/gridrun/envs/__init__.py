"""Environments: the cached virtualenvs (and, elsewhere, images) experiments run in.

``pipconf`` reads the user's pip configuration so uv honours it, ``key`` names an
environment by what it contains, ``venv`` builds and caches local virtualenvs.
"""
