"""Reports of studies from the MLflow store: ``lwgan.report.builder.build_report`` (Markdown + PDF with the
design, run accounting, Table 1-style deltas with CIs and tests, curves, stability, samples and findings).
Never imports Ray."""
