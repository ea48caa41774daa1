"""Finding and comparing studies in the tracking store: ``store`` lists studies and shows one parent
run (``lwgan-study ls`` / ``show``), ``compare`` sets two parent runs side by side (``compare``),
``commands`` holds those commands and ``init``. Reads only; lwgan.tracking writes."""
