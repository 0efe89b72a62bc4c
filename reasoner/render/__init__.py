"""Rendering: models, answers, proofs and reports → text, JSON, CSV, Markdown, DOT.

Renderers read syntax trees and models only; every output is sorted, so the same input
gives the same bytes.
"""
