"""crosstune's converters, one module per operator family; each module registers its converters
with `crosstune.frontend.registry.converter` when imported (registry.load_all imports them all)."""
