"""First-party plugins for crawler, installed as the package ``crawler_plugins``.

They use only crawler's public API, the same way a third-party plugin would, and are
registered in the ``crawler.plugins`` entry-point group (see setup.cfg).
"""
