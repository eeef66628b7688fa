"""The kinds of request a person can make, named once. Imports nothing: DAG files read it at parse."""

ACCESS = "access"
RIGHTS = ("rectify", "erase", "restrict", "lift_restriction", "object")
KINDS = (ACCESS, *RIGHTS)
# How a trigger form shows each right.
RIGHT_LABELS = {"rectify": "Rectification", "erase": "Erasure", "restrict": "Restriction",
                "lift_restriction": "Lift a restriction", "object": "Objection"}
