"""Dataset manifests, the fetch layer (local mirror first, then download) and loaders."""
