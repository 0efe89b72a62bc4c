"""From parsed statements to a checked rule set: declarations, safety, types,
stratification, patient locality, settings (`program`), and the cache of checked rule
sets between runs (`rulecache`).

May import: language.
"""
