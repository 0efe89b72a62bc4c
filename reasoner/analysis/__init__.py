"""From parsed statements to a checked rule set (`program`: `RuleSet`, loading with
includes, building): the checks of one rule, declarations, types and safety
(`rulecheck`), the order a body runs in (`order`), stratification and patient locality
(`strata`), settings (`settings`), and the cache of checked rule sets between runs
(`rulecache`).

May import: language.
"""
