"""Streamlit demo apps over the zoo: ``streamlit run apps/Home.py``.

The pages (``apps/pages_/``, one line each in ``Home.PAGES``) are thin: they read input, call
``zoo`` and ``recipes`` and draw. Shared pieces live here: input handling and error display
(``ui``), cached models and indexes (``resources``), bundled sample photos (``samples``), the
live training callback (``progress``), and what visitors may reach (``serving``: this machine
only by default, server folders only under ``$ZOO_APPS_ROOT``, 404 for unknown URLs).
"""
