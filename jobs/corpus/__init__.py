"""Sample corpus snapshots built from real text shipped in installed packages."""
