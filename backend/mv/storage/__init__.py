"""Where artifacts live: the `ArtifactStore` interface and its implementations."""
