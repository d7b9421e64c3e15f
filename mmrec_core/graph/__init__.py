"""Stage 3a, the refined item graph: semantic + co-occurrence edges, the stored build, the ego view."""
