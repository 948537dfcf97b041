"""Stacks: each turns the config into constructs. ``build_app`` assembles all of them."""
