"""The scenario language: YAML (or JSON) files parsed into frozen, validated models.

Import the submodules you need (``loader``, ``model``, ``plan``); this package
imports nothing itself so that ``test-coordinator validate`` starts fast.
"""
