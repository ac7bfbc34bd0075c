"""The model zoo on the Hugging Face Hub.

- `manifest`: the `weights:` block of a zoo recipe (`WeightsManifest`): Hub
  repo, file, pinned revision, sha256, licence, publication status, and the
  feature extractors' weights; validated when the recipe loads.
- `download`: `fetch(entry)` — the Hugging Face cache first, then the Hub
  when allowed, every file checked by sha256 and read as safetensors only.

How the pieces meet: `delcli.weights.resolve_weights("unav100")` fetches a
`published` model's file through `download.fetch` (a `packaged` one comes
from the package); `del zoo download NAME` fetches the model and its
extractors' weights; `del predict --weights NAME` gets the extractors' files
from `download.extractor_weights(manifest)` and passes them as the
`weights=` overrides of `features.pipeline.recipe_extractors` (a user's own
`--weights NAME=FILE` still wins). `scripts/publish.py` writes and uploads a
Hub folder and prints the block to paste.
"""
