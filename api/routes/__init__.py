"""HTTP routes, one short module per concept; every module's ``router`` is mounted by ``create_app``."""
