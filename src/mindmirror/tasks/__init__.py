"""Task families and dataset loaders."""
