"""Test programs shared by the tests of each engine, so both run the very same text."""

DECLS = """
.type device = room_air | nasal_cannula | facemask
.type drug = tocilizumab | dexamethasone | antipyretic
.decl temp(p: id, c: number[30, 45] "C") input "temperature"
.decl oxygen(p: id, d: device, l: number[0, 80] "L/min") input "oxygen"
.decl given(p: id, drug: drug, mg: number[0, 5000] "mg", h: number[0, 2000] "h") input "doses"
.decl weight(p: id, kg: number[1, 400] "kg") input "weight"
.decl allergy(p: id, drug: drug) input "allergy"
.decl patient(p: id) internal "every patient with a fact"
"""

# Three mutually recursive rules over two facts (answer: empty); pyDatalog alone hangs here.
MUTUAL_EMPTY = """
.decl e(a: symbol) input "seed"
.decl p(a: symbol) output "p"
.decl q(a: symbol) output "q"
.decl r(a: symbol) output "r"
p(X) :- q(X), e(X).
q(X) :- r(X), e(X).
r(X) :- p(X), e(X).
"""

# Stratified negation over three strata.
NEGATION_CHAIN = """
.decl node(n: symbol) input "n"
.decl a(n: symbol) internal "a"
.decl b(n: symbol) internal "b"
.decl c(n: symbol) output "c"
a(X) :- node(X), X != n1.
b(X) :- node(X), !a(X).
c(X) :- node(X), !b(X).
"""

# Same generation: a recursive rule with two non-recursive atoms around it.
SAME_GENERATION = """
.decl parent(c: symbol, p: symbol) input "child, parent"
.decl person(x: symbol) internal "x"
.decl sg(a: symbol, b: symbol) output "same generation"
person(X) :- parent(X, _).
person(X) :- parent(_, X).
sg(X, X) :- person(X).
sg(X, Y) :- parent(X, XP), sg(XP, YP), parent(Y, YP).
"""
