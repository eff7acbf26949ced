#!/usr/bin/python3
"""check_match_fodo.py SUMMARY.json: fails unless examples/match_fodo.py lowered the mismatch.

Checks the summary's shape (schema_version, iterations, envelopes, memory)
and that M decreased from the first iteration to the last by at least 10x,
with every accepted iteration no worse than the one before.
"""
import json
import math
import sys


def main(path):
    with open(path) as f:
        summary = json.load(f)
    assert summary["schema_version"] == 1, "schema_version"
    values = [it["mismatch"] for it in summary["iterations"]]
    assert len(values) >= 2 and all(math.isfinite(v) for v in values), "iterations: %s" % values
    assert all(b <= a for a, b in zip(values, values[1:])), "M rose between iterations: %s" % values
    assert values[-1] < values[0] / 10, "M did not fall 10x: %s" % values
    assert summary["mismatch_after"] == values[-1] and summary["mismatch_before"] == values[0]
    for key in ("zero_current_matched", "matched", "zero_current_matched_no_space_charge"):
        env = summary["envelopes"][key]
        assert len(env["cells"]) == len(env["sigma_x_m"]) == len(env["sigma_y_m"]) >= 2, key
    memory = summary["memory"]
    assert memory["reversible_tape_bytes"] < memory["fused_tape_bytes"], memory
    print("match_fodo: M %.3e -> %.3e over %d iterations: ok" % (values[0], values[-1], len(values) - 1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
