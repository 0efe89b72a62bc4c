"""What belongs to one guideline's vocabulary rather than to the language: `crs`, the
CRS rule set's recommendation report and its conflicts.

May import: language, analysis, io, plan, engines, proof, authoring.
"""
