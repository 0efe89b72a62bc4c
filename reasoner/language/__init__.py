"""The rule language itself: its syntax tree (`syntax`), grammar and parser (`parse`,
`grammar.lark`), the one number and text syntax of values (`values`), and diagnostics
(`errors`). Every later stage shares this tree.

May import: nothing else of the reasoner.
"""
