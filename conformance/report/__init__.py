"""Certification reports of a conformance run: verdicts, waivers, Markdown, JUnit XML, KCIDB, KTAP.

Everything here is stdlib only and works from ``reports/conformance-summary.json``
alone, so a vendor can regenerate the documents from an archived run with
``python -m conformance.report``.  The pytest side (Allure steps and
attachments, applying waivers while the run goes) is ``fixtures/reporting.py``.
"""
