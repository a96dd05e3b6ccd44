"""snnc.compiler: frontend -> intermediate graph -> passes (quantize, check, map) -> backends."""
