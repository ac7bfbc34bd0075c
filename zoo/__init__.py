"""Zoo recipes (`*.yaml`), importable as `delcli.zoo` so they ship with the package."""
