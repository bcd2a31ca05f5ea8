"""The book: its build, the JupyterLab launcher, source display, plots and the computed verdicts."""
