"""Streamlit demo apps over the zoo: ``streamlit run apps/Home.py``.

The pages (``apps/pages_/``) are thin: they read input, call ``zoo`` and ``recipes`` and draw.
Shared pieces live here: input handling and error display (``ui``), cached models and indexes
(``resources``), bundled sample photos (``samples``), and the live
training callback (``progress``).
"""
