"""What every stage shares and nothing else: the progress callback, the one input hash, the provenance
record, prompt templates with the catalog's domain, and the background-job runner."""
