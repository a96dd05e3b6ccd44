"""snnc.runtime: runs a compiled artifact on Lava's simulator. The only package that imports lava."""
