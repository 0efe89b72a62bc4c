"""Rendering: models, answers, proofs and reports → text, JSON, CSV, Markdown, DOT, HTML
(proofs: `proof`, with `proof_state`, `proof_html` and `proof_dot`).

Renderers read syntax trees and models only; every output is sorted, so the same input
gives the same bytes.
"""
