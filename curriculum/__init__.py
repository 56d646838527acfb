"""The data side of currimix: documents, quality scores, orderings and the packed token store."""
