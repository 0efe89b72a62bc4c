"""The `reasoner` command (click): each command parses its options, calls the stages
before it and renders what they return. Exit status: 0 success, 1 findings, 2 bad input
or usage (every problem a `file:line:col: error[CODE]: message` line, or `error[CODE]:
message` where there is no place, never a traceback), 130 interrupted (Ctrl-C).

`group` holds the group (`main`) and its error handling, `common` the shared options,
exit statuses and loading; the commands are in `evaluate` (query, recommend,
conflicts), `explain` (why, why-not, verify), `author` (rules, check, test, diff), `facts`
(from-fhir, to-fhir) and `serve` (serve, overrides).
Importing this package loads click and the command definitions only: each command
imports what it uses when it runs (tests/test_startup.py).

May import: every stage.
"""
from __future__ import annotations

from reasoner.cli import author, evaluate, explain, facts, serve
from reasoner.cli.group import main

__all__ = ["main"]

for _command in (evaluate.query, evaluate.recommend, evaluate.conflicts, explain.why, explain.why_not,
                 explain.verify, author.rules, author.check, author.test_command, author.diff, facts.facts,
                 serve.serve, serve.overrides):
    main.add_command(_command)

del _command
