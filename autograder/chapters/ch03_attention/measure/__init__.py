"""What is measured on a student's attention class alone, with no reference solution: which positions are
masked, which axis sums to 1, the scale used, where dropout acts, whether out_proj acts, why it raised.

The grader's diagnosis (explain/) builds on it, and the student's self-check ships it.
"""
